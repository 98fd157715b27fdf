#!/bin/sh
# A CJK font for the Chinese lessons' plots (titles, legends): matplotlib draws a missing glyph as a box.
# Installs Debian's fonts-noto-cjk with apt-get when run as root (about 20 s, 90 MB); otherwise says how.
# Exits 0 when a font is there (already, or now), 1 otherwise. matplotlib's font list is cached: after an
# install, the project's cache is removed so that the next plot finds the new font.
set -u
if fc-list :lang=zh family 2>/dev/null | grep -q .; then
    # A font installed after matplotlib cached its list (by hand, or by another checkout) is not seen
    # until that cache goes: removed when a font file came after it (its inode change time: a package keeps
    # its files' own modification times).
    for cache in .leaklab/matplotlib/fontlist-*.json; do
        if [ -e "$cache" ] && find /usr/share/fonts /usr/local/share/fonts -cnewer "$cache" -type f 2>/dev/null | grep -q .; then
            rm -f "$cache"
        fi
    done
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no CJK font, and no apt-get here to install one: install Noto Sans CJK SC (the Chinese plots show boxes without it)"
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "no CJK font: sudo apt-get install fonts-noto-cjk (the Chinese plots show boxes without it)"
    exit 1
fi
log=.leaklab/apt-fonts.log
mkdir -p .leaklab
echo "installing a CJK font for the Chinese plots with apt-get (fonts-noto-cjk, about 20 s; log: $log)"
if { apt-get install -y -q fonts-noto-cjk || { apt-get update -q && apt-get install -y -q fonts-noto-cjk; }; } >"$log" 2>&1; then
    rm -f .leaklab/matplotlib/fontlist-*.json
    exit 0
fi
echo "apt-get could not install fonts-noto-cjk: $(tail -n 1 "$log") (full log: $log)"
exit 1
