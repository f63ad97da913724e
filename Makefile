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

# Notifier plugins: plugins/NAME/*.c -> $(OBJDIR)/plugins/NAME.so. Each links
# only what it needs (PLUGIN_PKGS_NAME) plus the static helper library built
# from plugins/common/*.c and src/notification_json.c as position-independent
# code. Plugins never link against the agent (-z defs proves it).
PLUGINS = $(sort $(filter-out common example,$(notdir $(patsubst %/,%,$(dir $(wildcard plugins/*/*.c))))))
PLUGIN_PKGS_slack   = libcurl jansson
PLUGIN_PKGS_email   = libcurl
PLUGIN_PKGS_syslog  =
PLUGIN_PKGS_webhook = libcurl jansson gnutls
PLUGIN_PKGS_exec    = jansson
PLUGIN_CFLAGS = -fPIC -fvisibility=hidden -Iplugins/common
PLUGIN_LDFLAGS = -shared
ifneq ($(SANITIZE),1)
# Every symbol a plugin uses must come from its own libraries. (Sanitized
# plugins take the sanitizer runtime from the program, so not there.)
PLUGIN_LDFLAGS += -Wl,-z,defs
endif
PUSRCS   = $(wildcard plugins/common/*.c) src/notification_json.c
PUOBJS   = $(PUSRCS:%.c=$(OBJDIR)/pic/%.o)
PULIB    = $(OBJDIR)/pic/libdwplugin.a
PLUGINSOS = $(PLUGINS:%=$(OBJDIR)/plugins/%.so)
# Plugins that exist to be refused or to misbehave, for the ABI tests.
TPLUGSRCS = $(wildcard tests/plugins/*.c)
TPLUGSOS  = $(TPLUGSRCS:tests/plugins/%.c=$(OBJDIR)/tests/plugins/%.so)

.PHONY: all plugins tests check check-unit check-integration deps demo fuzz fuzz-smoke bench clean install uninstall

all: $(BIN) plugins

plugins: $(PLUGINSOS)

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(OBJDIR)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (pic)")
	$(Q)$(CC) $(CFLAGS) $(PLUGIN_CFLAGS) -c -o $@ $<

$(PULIB): $(PUOBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

.SECONDEXPANSION:
$(OBJDIR)/plugins/%.so: $$(wildcard plugins/%/*.c) $(PULIB) include/dmarcwatch/notifier.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  PLUGIN  $@")
	$(Q)$(CC) $(CFLAGS) $(PLUGIN_CFLAGS) $(LDFLAGS) $(PLUGIN_LDFLAGS) -o $@ \
		$(filter %.c,$^) $(PULIB) \
		$(if $(PLUGIN_PKGS_$*),$(shell $(PKG_CONFIG) --libs $(PLUGIN_PKGS_$*)))

$(OBJDIR)/tests/plugins/%.so: tests/plugins/%.c include/dmarcwatch/notifier.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  PLUGIN  $@")
	$(Q)$(CC) $(CFLAGS) -fPIC $(LDFLAGS) -shared -o $@ $<

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

tests: $(BIN) plugins $(UNITBINS) $(TPLUGSOS)

deps:
	@sh scripts/deps.sh

# The whole suite: dependencies, a -Werror build, unit and integration tests,
# the unit tests again under ASan+UBSan, and a short fuzz run when clang is
# here. Ends with "N passed, M failed".
check:
	@sh scripts/deps.sh
	@sh scripts/check.sh

check-unit: tests
	@DW_PLUGIN_BUILD=$(CURDIR)/$(OBJDIR)/plugins DW_TEST_PLUGINS=$(CURDIR)/$(OBJDIR)/tests/plugins \
		sh scripts/run-tests.sh $(UNITBINS)

check-integration: $(BIN) plugins $(TPLUGSOS)
	@DMARCWATCH=$(CURDIR)/$(BIN) DW_PLUGIN_BUILD=$(CURDIR)/$(OBJDIR)/plugins \
		DW_TEST_PLUGINS=$(CURDIR)/$(OBJDIR)/tests/plugins sh scripts/run-tests.sh $(wildcard tests/integration/t_*.sh)

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

PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

# The binary, the bundled plugins, and the plugin SDK (header + .pc) so that
# out-of-tree plugins build with `pkg-config --cflags dmarcwatch-plugin`.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(INCLUDEDIR)/dmarcwatch \
		$(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/dmarcwatch
	for p in $(PLUGINS); do install -m 644 $(OBJDIR)/plugins/$$p.so $(DESTDIR)$(PLUGINDIR)/$$p.so || exit 1; done
	install -m 644 include/dmarcwatch/notifier.h $(DESTDIR)$(INCLUDEDIR)/dmarcwatch/notifier.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@PLUGINDIR@|$(PLUGINDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' packaging/dmarcwatch-plugin.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/dmarcwatch-plugin.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/dmarcwatch-plugin.pc

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dmarcwatch
	for p in $(PLUGINS); do rm -f $(DESTDIR)$(PLUGINDIR)/$$p.so; done
	rm -f $(DESTDIR)$(INCLUDEDIR)/dmarcwatch/notifier.h $(DESTDIR)$(PKGCONFIGDIR)/dmarcwatch-plugin.pc
	-rmdir $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(LIBDIR)/dmarcwatch $(DESTDIR)$(INCLUDEDIR)/dmarcwatch 2>/dev/null

clean:
	rm -rf build build-san build-fuzz dmarcwatch

-include $(wildcard build/src/*.d build/tests/*.d build/pic/*/*.d build/pic/*/*/*.d \
	build-san/src/*.d build-san/tests/*.d build-san/pic/*/*.d build-san/pic/*/*/*.d)
