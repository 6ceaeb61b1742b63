# Install rj with its man pages and shell completions:
#   make install                   # into /usr/local (needs root)
#   make install PREFIX=$HOME/.local  # into your home; put ~/.local/bin on PATH
#   make uninstall PREFIX=...      # the same PREFIX
# Packagers: DESTDIR=/staging is prepended to every path.
# `make docs` regenerates man/ and completions/ after a change to a tool's options.

PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
INSTALL ?= install

ROOT := $(DESTDIR)$(PREFIX)
BINDIR := $(ROOT)/bin
MANDIR := $(ROOT)/share/man/man1
BASHDIR := $(ROOT)/share/bash-completion/completions
ZSHDIR := $(ROOT)/share/zsh/site-functions
FISHDIR := $(ROOT)/share/fish/vendor_completions.d

MANPAGES := $(wildcard man/*.1)
BASH_COMPLETIONS := $(wildcard completions/bash/*)
ZSH_COMPLETIONS := $(wildcard completions/zsh/_*)
FISH_COMPLETIONS := $(wildcard completions/fish/*.fish)

.PHONY: all install uninstall docs check-docs test

all:
	$(CARGO) build --release --locked

# Every binary of the package (cargo install builds them all, in release mode).
install:
	$(CARGO) install --locked --force --path . --root '$(ROOT)'
	$(INSTALL) -d '$(MANDIR)' '$(BASHDIR)' '$(ZSHDIR)' '$(FISHDIR)'
	$(INSTALL) -m 644 $(MANPAGES) '$(MANDIR)'
	$(INSTALL) -m 644 $(BASH_COMPLETIONS) '$(BASHDIR)'
	$(INSTALL) -m 644 $(ZSH_COMPLETIONS) '$(ZSHDIR)'
	$(INSTALL) -m 644 $(FISH_COMPLETIONS) '$(FISHDIR)'

uninstall:
	-$(CARGO) uninstall --root '$(ROOT)' rj
	rm -f $(addprefix '$(MANDIR)'/,$(notdir $(MANPAGES)))
	rm -f $(addprefix '$(BASHDIR)'/,$(notdir $(BASH_COMPLETIONS)))
	rm -f $(addprefix '$(ZSHDIR)'/,$(notdir $(ZSH_COMPLETIONS)))
	rm -f $(addprefix '$(FISHDIR)'/,$(notdir $(FISH_COMPLETIONS)))

docs:
	$(CARGO) run --locked --example gen-docs

check-docs:
	$(CARGO) run --locked --example gen-docs -- --check

test:
	scripts/test
