# Install rj with its man pages and shell completions:
#   make && sudo make install      # into /usr/local
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

BINS := $(basename $(notdir $(wildcard src/bin/*.rs)))
MANPAGES := $(wildcard man/*.1)
BASH_COMPLETIONS := $(wildcard completions/bash/*)
ZSH_COMPLETIONS := $(wildcard completions/zsh/_*)
FISH_COMPLETIONS := $(wildcard completions/fish/*.fish)

.PHONY: all install uninstall docs check-docs test

all:
	$(CARGO) build --release --locked

# Every binary of the package, copied from target/release without cargo's bookkeeping files.
# Into a root-owned PREFIX, build first as yourself: make && sudo make install.
install: all
	$(INSTALL) -d '$(BINDIR)' '$(MANDIR)' '$(BASHDIR)' '$(ZSHDIR)' '$(FISHDIR)'
	$(INSTALL) -m 755 $(addprefix target/release/,$(BINS)) '$(BINDIR)'
	$(INSTALL) -m 644 $(MANPAGES) '$(MANDIR)'
	$(INSTALL) -m 644 $(BASH_COMPLETIONS) '$(BASHDIR)'
	$(INSTALL) -m 644 $(ZSH_COMPLETIONS) '$(ZSHDIR)'
	$(INSTALL) -m 644 $(FISH_COMPLETIONS) '$(FISHDIR)'

uninstall:
	rm -f $(addprefix '$(BINDIR)'/,$(BINS))
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
