"""
conftest.py — the fixtures of popgate's integration tests.

  it_root          session: the folder all servers' folders live in (see below)
  new_dir(prefix)  a fresh folder below it_root
  test_ca          session: a CA and a "localhost" server certificate (tlsca.TestCA)
  rogue_ca         session: another CA with its own "localhost" certificate, which
                   popgate must not trust (bad-certificate faults)
  corpus           session: corpus.Corpus over the SpamAssassin messages (npm)
  provider         a running Dovecot (provider.Dovecot) in its own temp folder
  make_popgate     factory: make_popgate(provider=None, overrides=None, start=True,
                   tls="implicit", scripted=None) returns a popgate.Popgate whose
                   [provider localhost] reaches PROVIDER (Dovecot; tls "implicit"
                   = POP3S, "starttls" = the plain port) or SCRIPTED (plain);
                   OVERRIDES = {section: {key: value}} (None drops). Every one
                   made is stopped at teardown, before the providers; sanitizer
                   reports or a bad exit status fail the test.
  popgate          a running popgate whose provider "localhost" is `provider`
                   (POP3S, verified against test_ca)
  make_scripted    factory: make_scripted(tls_context=None) returns a running
                   scripted_provider.ScriptedProvider

Everything listens on 127.0.0.1 on ports chosen at run time; every server
lives in its own temp folder and is killed at teardown. The folders are not
pytest's tmp_path: that tree is private to the user running the tests, and
as root both Dovecot (mail as "nobody", auth as "dovecot") and popgate (which
drops to its service user) must reach their folders. They live below one
mode-0755 folder in /tmp, removed after the session (kept, and named, when
POPGATE_IT_KEEP=1). Each test has a deadline: past it, its servers are
killed and every thread's traceback is printed; a minute later the run ends.
"""

import faulthandler
import fcntl
import os
import shutil
import sys
import tempfile
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import corpus as corpus_mod  # noqa: E402
import itutil  # noqa: E402
import tlsca  # noqa: E402
from popgate import Popgate, merge_config  # noqa: E402
from provider import Dovecot  # noqa: E402
from scripted_provider import ScriptedProvider  # noqa: E402
from silent_provider import SilentProvider  # noqa: E402

TEST_DEADLINE = 300        # seconds for any one test
CRASH_TEST_DEADLINE = 400


def pytest_configure(config):
    config.addinivalue_line("markers", "crash: kills popgate at random moments (slow); "
                            "runs alone under pytest-xdist")
    # The controller of a pytest-xdist run makes the folder of the lock its
    # workers share (_alone); they inherit its path.
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        shared = tempfile.mkdtemp(prefix="popgate-it-shared-")
        config._popgate_shared = shared
        os.environ["POPGATE_IT_SHARED"] = shared


def pytest_unconfigure(config):
    shared = getattr(config, "_popgate_shared", None)
    if shared:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(autouse=True)
def _alone(request):
    """With pytest-xdist, a test marked "crash" runs alone: it waits for the
    other workers' running tests to end, and they start none until it has
    ended (its kills must meet each phase of the daemon's work, which a
    machine busy with other tests draws out). Every other test holds the
    lock shared; a turnstile keeps them from starving the crash test."""
    shared = os.environ.get("POPGATE_IT_SHARED")
    if not shared or "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    alone = request.node.get_closest_marker("crash") is not None
    with open(os.path.join(shared, "turnstile"), "a") as turnstile, \
            open(os.path.join(shared, "tests"), "a") as tests:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(tests, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(tests, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _deadline(request):
    """A test past its deadline gets its servers killed, so that whatever it
    waits for fails; if even that does not end it, the run ends with every
    thread's traceback."""
    limit = CRASH_TEST_DEADLINE if request.node.get_closest_marker("crash") else TEST_DEADLINE

    def expire():
        sys.stderr.write(f"\n{request.node.nodeid}: over its {limit}s deadline; "
                         "killing its servers\n")
        faulthandler.dump_traceback(all_threads=True)
        itutil.kill_registered_groups()

    timer = threading.Timer(limit, expire)
    timer.daemon = True
    timer.start()
    faulthandler.dump_traceback_later(limit + 60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
    timer.cancel()


@pytest.fixture(scope="session")
def it_root():
    root = tempfile.mkdtemp(prefix="popgate-it-")
    os.chmod(root, 0o755)
    yield root
    if os.environ.get("POPGATE_IT_KEEP") == "1":
        print(f"\nintegration test folders kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


def _new_dir(root, prefix):
    path = tempfile.mkdtemp(prefix=prefix + "-", dir=root)
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def new_dir(it_root):
    return lambda prefix="dir": _new_dir(it_root, prefix)


@pytest.fixture(scope="session")
def test_ca(it_root):
    return tlsca.make_ca(_new_dir(it_root, "ca"))


@pytest.fixture(scope="session")
def rogue_ca(it_root):
    return tlsca.make_ca(_new_dir(it_root, "rogue-ca"), name="rogue CA")


@pytest.fixture(scope="session")
def corpus():
    return corpus_mod.Corpus(corpus_mod.install())


@pytest.fixture
def _gates():
    """The popgates made in this test (so that they stop before their provider)."""
    return []


@pytest.fixture
def provider(it_root, test_ca, _gates):
    dovecot = Dovecot(_new_dir(it_root, "dovecot"), test_ca)
    dovecot.start()
    yield dovecot
    for gate in _gates:
        gate.close()
    dovecot.stop()


def base_config(directory, provider_sections):
    """popgate's test configuration in DIRECTORY; PROVIDER_SECTIONS maps a
    section name ("provider localhost") to its keys."""
    config = {
        "server": {
            "data_dir": os.path.join(directory, "data"),
            "log_file": os.path.join(directory, "popgate.log"),
            "log_level": "debug",
            "hostname": "localhost",
            "listen_address": itutil.LOOPBACK,
            "pop3_port": itutil.free_port(),
            "pop3s_port": itutil.free_port(),
            # Clients on loopback log in without TLS in the "plain" variants.
            "allow_plaintext_auth": "yes",
            "login_fail_delay_ms": 0,
            # DNS stays on loopback: a port where nothing answers, so a name
            # not in /etc/hosts (an MX the relay looks up for a test's mail)
            # fails at once instead of asking this machine's resolver. Tests
            # that need answers start dnsmasq and set their own.
            "nameservers": f"{itutil.LOOPBACK}:{itutil.free_port()}",
            # No DNSSEC: dnsmasq serves no signed root, so a machine's root
            # trust anchor (the default when dns-root-data is installed)
            # would make every answer bogus. test_relay_dane.py sets one.
            "dns_trust_anchor": "",
        },
        "pipeline": {"workers": 2},
        "fetch": {"retry_min": 1, "retry_max": 5, "timeout": 5},
        # Free ports, so tests running side by side never share the defaults.
        "smtp": {"port": itutil.free_port(), "submission_port": itutil.free_port()},
        "web": {"port": itutil.free_port()},
    }
    config.update(provider_sections)
    return config


def dovecot_section(dovecot, ca, tls="implicit"):
    """The [provider localhost] keys that reach DOVECOT with TLS mode TLS."""
    port = dovecot.pop3s_port if tls == "implicit" else dovecot.pop3_port
    return {"port": port, "tls": tls, "ca_file": ca.ca_cert, "allow_private": "yes"}


def scripted_section(scripted, ca=None):
    if scripted.tls_context is not None:
        return {"port": scripted.port, "tls": "implicit", "ca_file": ca.ca_cert,
                "allow_private": "yes"}
    return {"port": scripted.port, "tls": "none", "allow_private": "yes"}


@pytest.fixture
def make_popgate(it_root, test_ca, _gates):
    made = _gates

    def make(provider=None, overrides=None, start=True, tls="implicit", scripted=None):
        directory = _new_dir(it_root, "popgate")
        sections = {}
        if provider is not None:
            sections["provider localhost"] = dovecot_section(provider, test_ca, tls)
        elif scripted is not None:
            sections["provider localhost"] = scripted_section(scripted, test_ca)
        config = merge_config(base_config(directory, sections), overrides)
        gate = Popgate(directory, config)
        made.append(gate)
        if start:
            gate.start()
        return gate

    yield make
    problems = []
    for gate in made:
        gate.close()
        reports = gate.sanitizer_reports()
        if reports:
            problems.append(f"{gate.dir}: {', '.join(reports)}\n{gate.stderr_tail(6000)}")
        elif gate.bad_exits:
            problems.append(f"{gate.dir}: exit status {gate.bad_exits} after SIGTERM\n"
                            f"{gate.stderr_tail(3000)}\n--- log ---\n{gate.log_tail(3000)}")
    if problems:
        pytest.fail("popgate did not end cleanly:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def popgate(provider, make_popgate):
    return make_popgate(provider=provider)


@pytest.fixture
def make_scripted(_gates):
    made = []

    def make(tls_context=None):
        scripted = ScriptedProvider(tls_context=tls_context).start()
        made.append(scripted)
        return scripted

    yield make
    for gate in _gates:
        gate.close()
    for scripted in made:
        scripted.stop()


@pytest.fixture
def silent_provider():
    """A provider that accepts connections and never answers (silent_provider.py)."""
    provider = SilentProvider()
    yield provider
    provider.stop()
