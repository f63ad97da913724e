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

.PHONY: all plugins tests check check-unit check-integration deps demo fuzz fuzz-smoke bench clean install uninstall \
	systemd-unit check-install check-deb deb FORCE

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

PKGCONFIGDIR   ?= $(LIBDIR)/pkgconfig
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
MANPAGES = $(sort $(wildcard packaging/man/*.5 packaging/man/*.7 packaging/man/*.8))

# Objects that compile an install path in (config.c: DW_PLUGINDIR, main.c:
# DW_SYSCONFDIR) are rebuilt when a path changes, so that `make` followed by
# `make install PREFIX=/usr` never installs a binary looking in /usr/local.
DW_PATHS = $(PLUGINDIR) $(SYSCONFDIR)
$(OBJDIR)/paths: FORCE
	@mkdir -p $(OBJDIR)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(DW_PATHS)' ]; then echo '$(DW_PATHS)' >$@; fi
$(OBJDIR)/src/config.o $(OBJDIR)/src/main.o: $(OBJDIR)/paths
FORCE:

# The systemd unit with this install's paths: $(call dw_unit,OUTPUT).
define dw_unit
sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	packaging/systemd/dmarcwatch.service.in >$(1).tmp && \
	if grep -n '@[A-Z_]*@' $(1).tmp; then echo "$(1): placeholder left" >&2; rm -f $(1).tmp; exit 1; fi && \
	chmod 644 $(1).tmp && mv $(1).tmp $(1)
endef
# `make systemd-unit UNIT_OUT=FILE BINDIR=... SYSCONFDIR=...` writes just the unit
# (tests/integration/t_systemd.sh points it at the built binary).
UNIT_OUT ?= $(OBJDIR)/dmarcwatch.service
systemd-unit:
	@mkdir -p $(dir $(UNIT_OUT))
	@$(call dw_unit,$(UNIT_OUT))

# What `make install` puts under $(DESTDIR):
#   $(BINDIR)/dmarcwatch                     the program (users run report/replay too)
#   $(PLUGINDIR)/*.so                        the bundled notifier plugins
#   $(INCLUDEDIR)/dmarcwatch/notifier.h      the plugin SDK: header ...
#   $(PKGCONFIGDIR)/dmarcwatch-plugin.pc     ... and pkg-config file
#   $(MANDIR)/manN/*.N                       the man pages in packaging/man
#   $(SYSCONFDIR)/dmarcwatch/dmarcwatch.yaml.example
#                                            replaced on every install; the
#                                            real dmarcwatch.yaml is never touched
#   $(SYSTEMDUNITDIR)/dmarcwatch.service     from packaging/systemd/dmarcwatch.service.in
# A source install also needs the system user (see README):
#   adduser --system --group --home /var/lib/dmarcwatch --no-create-home dmarcwatch
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(INCLUDEDIR)/dmarcwatch \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(SYSCONFDIR)/dmarcwatch $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/dmarcwatch
	for p in $(PLUGINS); do install -m 644 $(OBJDIR)/plugins/$$p.so $(DESTDIR)$(PLUGINDIR)/$$p.so || exit 1; done
	install -m 644 include/dmarcwatch/notifier.h $(DESTDIR)$(INCLUDEDIR)/dmarcwatch/notifier.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@PLUGINDIR@|$(PLUGINDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' packaging/dmarcwatch-plugin.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/dmarcwatch-plugin.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/dmarcwatch-plugin.pc
	for f in $(MANPAGES); do s=$${f##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s && \
		install -m 644 $$f $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; done
	install -m 644 config/dmarcwatch.yaml.example $(DESTDIR)$(SYSCONFDIR)/dmarcwatch/dmarcwatch.yaml.example
	$(call dw_unit,$(DESTDIR)$(SYSTEMDUNITDIR)/dmarcwatch.service)

# Removes exactly what install put there, then the dmarcwatch directories
# if that left them empty (a dmarcwatch.yaml keeps its directory).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dmarcwatch
	for p in $(PLUGINS); do rm -f $(DESTDIR)$(PLUGINDIR)/$$p.so; done
	rm -f $(DESTDIR)$(INCLUDEDIR)/dmarcwatch/notifier.h $(DESTDIR)$(PKGCONFIGDIR)/dmarcwatch-plugin.pc
	for f in $(MANPAGES); do rm -f $(DESTDIR)$(MANDIR)/man$${f##*.}/$${f##*/}; done
	rm -f $(DESTDIR)$(SYSCONFDIR)/dmarcwatch/dmarcwatch.yaml.example
	rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/dmarcwatch.service
	for d in $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(LIBDIR)/dmarcwatch $(DESTDIR)$(INCLUDEDIR)/dmarcwatch \
		$(DESTDIR)$(SYSCONFDIR)/dmarcwatch; do rmdir $$d 2>/dev/null || :; done

# Checks of the install and of the Debian package (see scripts/).
check-install:
	@sh scripts/run-tests.sh scripts/check-install.sh
check-deb:
	@sh scripts/run-tests.sh scripts/check-deb.sh
# dpkg-buildpackage on a copy of the tree; the .deb lands in build-deb/.
deb:
	@sh scripts/build-deb.sh

clean:
	rm -rf build build-san build-fuzz build-deb dmarcwatch

-include $(wildcard build/src/*.d build/tests/*.d build/pic/*/*.d build/pic/*/*/*.d \
	build-san/src/*.d build-san/tests/*.d build-san/pic/*/*.d build-san/pic/*/*/*.d)
