# popgate — build, run and test.
#
#   make run     install missing packages, build, start popgate on high ports
#   make test    install missing packages, run the unit tests on the release
#                build (-O2, the binary users run) and under ASan/UBSan, then
#                fuzz targets (bounded) and integration tests
#   make SAN=1   build with AddressSanitizer and UndefinedBehaviorSanitizer

CC ?= cc
SAN ?= 0
PKGS := libevent libevent_openssl openssl sqlite3 libsodium inih jansson libunbound libseccomp \
	opendkim gmime-3.0 libpsl libarchive libpcre2-8 libzstd

ifeq ($(SAN),1)
BUILD := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1
else
BUILD := build/release
SANFLAGS :=
OPT := -O2
endif

CPPFLAGS += -D_GNU_SOURCE -Isrc
CFLAGS += -std=c11 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -pthread $(SANFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS += -pthread $(SANFLAGS)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lspf2 -lopendmarc -lm

# Every source file but the programs' mains and popgatectl's commands forms
# the library both programs link; src/cli/ is popgatectl's alone.
PROGRAM_MAINS := src/popgate.c src/cli/popgatectl.c
CLI_SRC := $(filter-out $(PROGRAM_MAINS),$(sort $(wildcard src/cli/*.c)))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB_SRC := $(filter-out $(PROGRAM_MAINS) $(CLI_SRC),$(shell find src -name '*.c' | sort))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
# The parsers and checks the fuzz targets reach; they must not need the event
# loop or the store (config*.c use only libevent's address parser and inih).
FUZZ_LIB := src/pop3/parse.c src/core/line.c src/pop3/listing.c src/core/policy.c \
	src/pipeline/proto.c src/pipeline/proto_encode.c src/pipeline/headers.c \
	src/store/spool.c src/core/util.c src/core/log.c src/core/config.c \
	src/core/config_key.c src/core/config_section.c src/core/config_show.c \
	src/core/rdata.c src/core/address.c src/core/cidr.c src/smtp/relay_policy.c src/smtp/reply.c \
	src/smtp/parse.c src/smtp/chunk.c src/smtp/mta_sts.c src/filters/mime.c src/filters/uri.c \
	src/filters/tokenize.c src/filters/dns.c src/filters/link.c src/filters/received.c \
	src/filters/attachments.c src/filters/settings.c src/filters/fuzzy_hash.c src/filters/clamd.c \
	src/filters/auth_header.c src/filters/ciss_header.c \
	src/filters/rules.c src/filters/rules_default.c src/filters/message.c \
	src/pipeline/subject_tag.c src/core/mbox.c src/depot/extract.c src/depot/pack.c src/core/crypto.c \
	src/ciss/token.c src/web/request.c
FUZZ_SECONDS ?= 20
# How many compilers, unit test binaries and integration test workers (pytest-
# xdist) run at once; `make test JOBS=1` runs everything one at a time.
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
# The fuzz targets' library, compiled once for all of them.
FUZZ_OBJ := $(FUZZ_LIB:%.c=build/fuzz/obj/%.o)
FUZZ_PKGS := libsodium libevent inih gmime-3.0 libpsl libarchive libpcre2-8 libzstd

.PHONY: all deps deps-test run test unit unit-bin fuzz fuzz-bin it bench bench-accuracy bench-filter bench-depot \
	bench-ciss clean format

all: $(BUILD)/popgate $(BUILD)/popgatectl

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/popgate: $(BUILD)/src/popgate.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/popgatectl: $(BUILD)/src/cli/popgatectl.o $(CLI_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(CLI_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/unit -o $@ $^ $(LDFLAGS) $(LDLIBS) -lcmocka

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) -std=c11 -g -O1 -Wall -Wextra -Werror \
		-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
		$(shell pkg-config --cflags $(FUZZ_PKGS)) -MMD -MP -c $< -o $@

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) -std=c11 -g -O1 -Wall -Wextra -Werror \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-o $@ $^ $(shell pkg-config --cflags --libs $(FUZZ_PKGS))

deps:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

run: deps
	$(MAKE) all
	$(BUILD)/popgate --config popgate.conf.example

unit-bin: $(UNIT_BIN)

unit: $(UNIT_BIN)
	@scripts/run-unit.sh $(JOBS) $(UNIT_BIN)

fuzz-bin: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@JOBS=$(JOBS) scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

it: $(BUILD)/popgate
	POPGATE_BIN=$(abspath $(BUILD)/popgate) /usr/bin/python3 -m pytest -q \
		$(if $(filter-out 0 1,$(JOBS)),-n $(JOBS)) tests/it

# Each phase builds with JOBS compilers, then runs its tests (their output
# stays in order: run-unit.sh and run-fuzz.sh print each binary's whole).
test: deps-test
	$(MAKE) -j$(JOBS) all unit-bin
	$(MAKE) unit
	$(MAKE) -j$(JOBS) SAN=1 all unit-bin
	$(MAKE) SAN=1 unit
	$(MAKE) -j$(JOBS) fuzz-bin
	$(MAKE) fuzz
	$(MAKE) SAN=1 it

bench: deps-test
	$(MAKE) all
	POPGATE_BIN=$(abspath build/release/popgate) /usr/bin/python3 bench/run.py
	POPGATE_BIN=$(abspath build/release/popgate) /usr/bin/python3 bench/smtp.py

# The Bayes filter's accuracy beside bogofilter's (bench/accuracy.py).
bench-accuracy: deps-test
	$(MAKE) build/release/popgatectl
	/usr/bin/python3 bench/accuracy.py --popgatectl $(abspath build/release/popgatectl)

# The filter chain's speed beside bogofilter and SpamAssassin (bench/filter.py).
bench-filter: deps-test
	$(MAKE) build/release/popgate build/release/popgatectl
	POPGATE_BIN=$(abspath build/release/popgate) /usr/bin/python3 bench/filter.py

# Challenge-response on the SpamAssassin corpus's spam: challenges sent and
# suppressed, by reason (bench/ciss.py).
bench-ciss: deps-test
	$(MAKE) build/release/popgate build/release/popgatectl
	POPGATE_BIN=$(abspath build/release/popgate) /usr/bin/python3 bench/ciss.py

# MailDepot's ingest and search at 10^6 messages beside zstd + an FTS5 index
# (bench/depot.py; about half an hour, some 20 GB in $$TMPDIR while it runs).
bench-depot: deps-test
	$(MAKE) build/release/popgate build/release/popgatectl build/release/bench/depot_query
	POPGATE_BIN=$(abspath build/release/popgate) /usr/bin/python3 bench/depot.py

format:
	clang-format -i $(shell find src tests -name '*.[ch]')

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- bench (owned by bench/) ----
# The load generator bench/run.py drives (it runs `make build/release/bench/popload`).
$(BUILD)/bench/popload: bench/popload.c src/core/util.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)
# bench/depot.py's in-process probe of depot_search.
$(BUILD)/bench/depot_query: bench/depot_query.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)
# ---- end bench ----
