# dmarcwatch - DMARC aggregate report agent.  GNU make, no autotools.
# `make` builds ./dmarcwatch; `make check` runs every test (see README).

VERSION  = 0.1.0

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
PLUGINDIR  ?= $(LIBDIR)/dmarcwatch/plugins
SYSCONFDIR ?= $(PREFIX)/etc
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man

CC         ?= cc
PKG_CONFIG ?= pkg-config
PKGS       = libxml-2.0 libzip zlib sqlite3 yaml-0.1 jansson libetpan gnutls libcurl

CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wcast-qual -Wformat=2 -fstack-protector-strong \
	-Iinclude -DDW_VERSION='"$(VERSION)"' \
	-DDW_PLUGINDIR='"$(PLUGINDIR)"' -DDW_SYSCONFDIR='"$(SYSCONFDIR)"' \
	-MMD -MP
# libetpan.pc on Debian carries a -specs= link option that breaks sanitizer
# and fuzzer links: drop it.
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(filter-out -specs=%,$(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null))
override CFLAGS += $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lm

OBJDIR = build
ifeq ($(WERROR),1)
override CFLAGS += -Werror
endif
ifeq ($(SANITIZE),1)
OBJDIR = build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
override CFLAGS += $(SANFLAGS)
override LDFLAGS += $(SANFLAGS)
endif

SRCS     = $(wildcard src/*.c)
LIBSRCS  = $(filter-out src/main.c,$(SRCS))
LIBOBJS  = $(LIBSRCS:%.c=$(OBJDIR)/%.o)
LIB      = $(OBJDIR)/libdmarcwatch.a
UNITSRCS = $(wildcard tests/unit/test_*.c)
UNITBINS = $(UNITSRCS:tests/unit/%.c=$(OBJDIR)/tests/%)
ifeq ($(SANITIZE),1)
BIN = $(OBJDIR)/dmarcwatch
else
BIN = dmarcwatch
endif

ifeq ($(V),1)
Q =
else
Q = @
endif

.PHONY: all tests check check-unit check-integration deps demo fuzz fuzz-smoke bench clean install uninstall

all: $(BIN)

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIBOBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BIN): $(OBJDIR)/src/main.o $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJDIR)/tests/%: tests/unit/%.c $(LIB) tests/tap.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC/LD   $<")
	$(Q)$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

tests: $(BIN) $(UNITBINS)

deps:
	@sh scripts/deps.sh

# The whole suite: dependencies, a -Werror build, unit and integration tests,
# the unit tests again under ASan+UBSan, and a short fuzz run when clang is
# here. Ends with "N passed, M failed".
check:
	@sh scripts/deps.sh
	@sh scripts/check.sh

check-unit: tests
	@sh scripts/run-tests.sh $(UNITBINS)

check-integration: $(BIN)
	@DMARCWATCH=$(CURDIR)/$(BIN) sh scripts/run-tests.sh $(wildcard tests/integration/t_*.sh)

demo: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh

# libFuzzer harnesses (clang only).
FUZZDIR   = build-fuzz
FUZZSRCS  = $(wildcard tests/fuzz/fuzz_*.c)
FUZZBINS  = $(FUZZSRCS:tests/fuzz/%.c=$(FUZZDIR)/%)
FUZZ_SECONDS ?= 60
$(FUZZDIR)/%: tests/fuzz/%.c $(LIBSRCS) $(wildcard include/dw/*.h)
	@mkdir -p $(FUZZDIR)
	@echo "  FUZZ    $@"
	$(Q)clang -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude \
		$(PKG_CFLAGS) -DDW_VERSION='"$(VERSION)"' -DDW_PLUGINDIR='"$(PLUGINDIR)"' \
		-DDW_SYSCONFDIR='"$(SYSCONFDIR)"' -fsanitize=fuzzer,address,undefined \
		-o $@ $< $(LIBSRCS) $(PKG_LIBS) -lm
fuzz: $(FUZZBINS)
fuzz-smoke: fuzz
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh scripts/fuzz-smoke.sh $(FUZZBINS)

bench: all
	@sh bench/parse.sh

install: all
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/dmarcwatch

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dmarcwatch

clean:
	rm -rf build build-san build-fuzz dmarcwatch

-include $(wildcard build/src/*.d build/tests/*.d build-san/src/*.d build-san/tests/*.d)
