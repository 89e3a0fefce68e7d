# holdline -- build, test, install.
#
#   make                 build bin/holdline
#   make test            install missing Debian packages, build, run every test
#   make demo            install missing packages, start redis + 3 nodes + publisher
#   make bench           the standard benchmark set (scripts/bench.sh)
#   make bench-compare   the same set against holdline and nchan, with ratios
#   make SANITIZER=address test   the same suite under ASan+UBSan (build/address/)
#   make install PREFIX=/usr/local DESTDIR=

CC ?= cc
PKG_CONFIG ?= pkg-config
PREFIX ?= /usr/local
DESTDIR ?=
SANITIZER ?=

PKGS := libmicrohttpd hiredis libevent libevent_pthreads libconfig libjwt jansson libcrypto
WARN := -Wall -Wextra -Wstrict-prototypes -Wwrite-strings
ifeq ($(CI),true)
WARN += -Werror
endif
CFLAGS ?= -O2 -g
# core/ is in layers, one folder each (README "Layout"); a file includes
# headers of its own layer and the ones below it.
CORE_DIRS := core core/store core/engine core/http
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -MMD -MP $(CORE_DIRS:%=-I%) -Ibuild/gen
LDLIBS_PKGS = $(shell $(PKG_CONFIG) --libs $(PKGS))
CFLAGS_PKGS = $(shell $(PKG_CONFIG) --cflags $(PKGS))

ifeq ($(SANITIZER),)
OUT := build/release
BIN := bin
else ifeq ($(SANITIZER),address)
OUT := build/address
BIN := build/address/bin
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SANITIZER),undefined)
OUT := build/undefined
BIN := build/undefined/bin
SAN_FLAGS := -fsanitize=undefined -fno-sanitize-recover=undefined
else
$(error SANITIZER must be address or undefined)
endif

ALL_CFLAGS = $(BASE_CFLAGS) $(WARN) $(CFLAGS_PKGS) $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS = -pthread $(SAN_FLAGS) $(LDFLAGS)

CORE_SRC := $(foreach d,$(CORE_DIRS),$(wildcard $(d)/*.c))
CORE_OBJ := $(CORE_SRC:%.c=$(OUT)/%.o) $(OUT)/gen/hl_assets_data.o
WEB := web/index.html web/holdline.js

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(OUT)/tests/%)
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BIN := $(ITEST_SRC:tests/integration/%.c=$(OUT)/tests/%)
ITEST_LIB := $(OUT)/tests/itest.o $(OUT)/tests/itrun.o

.PHONY: all test check demo deps install uninstall clean tests
all: $(BIN)/holdline

# -MMD makes headers prerequisites too; only sources and objects are linked.
LINK_INPUTS = $(filter %.c %.o %.a,$^)

$(BIN)/holdline: $(OUT)/cmd/holdline/main.o $(OUT)/libholdline.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(LINK_INPUTS) $(LDLIBS_PKGS) $(LDLIBS)

$(OUT)/libholdline.a: $(CORE_OBJ)
	@rm -f $@
	$(AR) rcs $@ $(LINK_INPUTS)

$(OUT)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/gen/hl_assets_data.c: scripts/embed-assets.sh $(WEB)
	@mkdir -p $(dir $@)
	sh scripts/embed-assets.sh $(WEB) > $@.tmp && mv $@.tmp $@

$(OUT)/gen/hl_assets_data.o: build/gen/hl_assets_data.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Unit tests: one cmocka binary per module, linked against the core library.
$(OUT)/tests/test_%: tests/unit/test_%.c $(OUT)/libholdline.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell $(PKG_CONFIG) --cflags cmocka) $(ALL_LDFLAGS) -o $@ $(LINK_INPUTS) \
		$(shell $(PKG_CONFIG) --libs cmocka) $(LDLIBS_PKGS)

# Integration tests: cmocka binaries that start redis-server and nodes.
$(OUT)/tests/%.o: tests/integration/%.c tests/integration/itest.h tests/integration/itrun.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell $(PKG_CONFIG) --cflags cmocka) -c -o $@ $<

$(ITEST_BIN): $(OUT)/tests/test_%: tests/integration/test_%.c $(ITEST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell $(PKG_CONFIG) --cflags cmocka) $(ALL_LDFLAGS) -o $@ $(LINK_INPUTS) \
		$(shell $(PKG_CONFIG) --libs cmocka) $(ITEST_LIBS)

# The private-channels test mints its tokens with libjwt, as an application would.
$(OUT)/tests/test_private_channels: ITEST_LIBS = $(shell $(PKG_CONFIG) --libs libjwt jansson libcrypto)

tests: $(BIN)/holdline $(UNIT_BIN) $(ITEST_BIN)

# What a token verification costs (scripts/bench-auth.sh runs it; not a test).
$(OUT)/tests/perf_verify: tests/perf/perf_verify.c $(OUT)/libholdline.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(LINK_INPUTS) $(LDLIBS_PKGS)

# ---------------------------------------------------------------------------
# holdline-bench: the load generator (cmd/holdline-bench/, libc only, so no
# pkg-config flags or libraries). Part of `all` and of `tests`, because the
# integration suite runs a short smoke test of each mode with it.
# `make bench` runs the standard set against redis + two local nodes
# (scripts/bench.sh; BENCH_SCALE=0.05 scales every count down).
BENCH_SRC := $(wildcard cmd/holdline-bench/*.c)
BENCH_OBJ := $(BENCH_SRC:%.c=$(OUT)/%.o)
BENCH_CFLAGS = -std=c11 -D_GNU_SOURCE -MMD -MP $(WARN) $(SAN_FLAGS) $(CFLAGS)

.PHONY: bench bench-compare
all: $(BIN)/holdline-bench
tests: $(BIN)/holdline-bench

$(OUT)/cmd/holdline-bench/%.o: cmd/holdline-bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -c -o $@ $<

$(BIN)/holdline-bench: $(BENCH_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) $(LDFLAGS) -o $@ $(LINK_INPUTS) -lm $(LDLIBS)

# Its pure parts (HTTP heads, poll answers, counters) have a unit test that
# links them alone; this rule wins over the core unit-test pattern above.
$(OUT)/tests/test_bench_parse: tests/unit/test_bench_parse.c \
		$(OUT)/cmd/holdline-bench/hb_parse.o $(OUT)/cmd/holdline-bench/hb_stats.o
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -Icmd/holdline-bench $(shell $(PKG_CONFIG) --cflags cmocka) \
		$(SAN_FLAGS) $(LDFLAGS) -o $@ $(LINK_INPUTS) $(shell $(PKG_CONFIG) --libs cmocka)

bench: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/bench.sh "$(BIN)"

# `make bench-compare`: the same set against holdline, then against nchan
# (nginx + libnginx-mod-nchan from Debian, Redis storage, 2 instances x 2
# workers, config/nchan-bench.conf), printing both and the ratios. nginx
# and the module are installed by scripts/bench-compare-deps.sh if missing.
bench-compare: deps
	@sh scripts/bench-compare-deps.sh
	@$(MAKE) --no-print-directory all
	@bash scripts/bench.sh --compare "$(BIN)"
# ---------------------------------------------------------------------------

deps:
	@sh scripts/deps.sh

# `make test` is the one command CI runs (.ci/run): packages, build, suite.
test: deps
	@$(MAKE) --no-print-directory tests
	@sh scripts/run-tests.sh "$(BIN)/holdline" $(UNIT_BIN) $(ITEST_BIN)

check: test

demo: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh "$(BIN)/holdline"

install: $(BIN)/holdline
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/etc/holdline
	install -m 0755 $(BIN)/holdline $(DESTDIR)$(PREFIX)/bin/holdline
	install -m 0644 config/holdline.cfg $(DESTDIR)$(PREFIX)/etc/holdline/holdline.cfg

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/holdline $(DESTDIR)$(PREFIX)/etc/holdline/holdline.cfg
	-rmdir $(DESTDIR)$(PREFIX)/etc/holdline

# ---- Fuzzing (libFuzzer, clang only) -------------------------------------
#
#   make fuzz-build      build/fuzz/fuzz_<target>, one per parser family in core/
#   make fuzz            run every target FUZZ_SECONDS seconds (scripts/fuzz.sh)
#   make fuzz-regress    run every target once over fuzz/corpus/<target>/ and
#                        fuzz/crashes/<target>/ (the inputs that once crashed)
#
# The core files a target tests are compiled again here, with coverage
# instrumentation and ASan+UBSan, so they stay apart from build/release.
# `make fuzz` and `make fuzz-regress` go through scripts/fuzz.sh, which
# installs clang when it is missing and then builds with fuzz-build.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 20
FUZZ_OUT := build/fuzz
FUZZ_TARGETS := request cursor frame config peek rreply token
FUZZ_BIN := $(FUZZ_TARGETS:%=$(FUZZ_OUT)/fuzz_%)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = $(BASE_CFLAGS) -Ifuzz $(WARN) $(CFLAGS_PKGS) -O1 -g $(FUZZ_SAN) \
	-fsanitize=fuzzer-no-link

.PHONY: fuzz fuzz-build fuzz-regress

$(FUZZ_OUT)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

# The pure modules, the only part of core/ the targets test, in one
# instrumented archive: splitting a module needs no change here.
PURE_SRC := core/hl_common.c core/hl_json.c core/hl_cursor.c core/hl_history.c \
	core/hl_msgcache.c core/hl_codec.c core/hl_request.c core/hl_peek.c core/hl_config.c \
	core/hl_deadline.c core/hl_errors.c core/store/hl_rreply.c core/store/hl_rlib.c \
	core/hl_grant.c core/hl_token.c core/hl_auth.c
PURE_LIB := $(FUZZ_OUT)/libholdline_pure.a
$(PURE_LIB): $(PURE_SRC:%.c=$(FUZZ_OUT)/%.o)
	@rm -f $@
	$(AR) rcs $@ $^
FUZZ_LIBS = $(shell $(PKG_CONFIG) --libs libconfig hiredis libjwt jansson libcrypto)

$(FUZZ_BIN): $(FUZZ_OUT)/fuzz_%: $(FUZZ_OUT)/fuzz/fuzz_%.o $(PURE_LIB)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(LDFLAGS) -o $@ $(LINK_INPUTS) $(FUZZ_LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz:
	@FUZZ_CC="$(FUZZ_CC)" FUZZ_SECONDS="$(FUZZ_SECONDS)" sh scripts/fuzz.sh

fuzz-regress:
	@FUZZ_CC="$(FUZZ_CC)" sh scripts/fuzz.sh --regress

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
