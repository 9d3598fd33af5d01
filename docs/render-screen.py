#!/usr/bin/env python3
"""Render a tmux screen capture (ANSI colours included) to a PNG: how docs/top.png is made.

To make docs/top.png again (as root, from the workspace, with a debug build):

    tmux new-session -d -s shot -x 120 -y 36 './target/debug/reaper-trace top --zombie-threshold 3s'
    sleep 4
    # make zombies and orphans meanwhile (what docs/top.png shows):
    for i in 1 2 3; do sh -c 'sleep 2 & exec sleep 12' & done
    unshare -fp --mount-proc sh -c 'sh -c "sleep 1 & sleep 1 & exit"; exec sleep 30' &
    sh -c 'for i in 1 2 3; do sh -c "true & exit"; done; sleep 1' &
    sleep 1
    ./target/debug/reaper-trace scenario orphan-subreaper >/dev/null 2>&1
    ./target/debug/reaper-trace scenario thread-reaper >/dev/null 2>&1
    sleep 6; tmux capture-pane -e -p -t shot > /tmp/top.ansi
    tmux kill-session -t shot
    python3 docs/render-screen.py /tmp/top.ansi docs/top.png

Needs Pillow (`pip install pillow`) and DejaVu Sans Mono (Debian: `fonts-dejavu-core`).
Handles what tmux emits: SGR colours (16, 256 and 24-bit), bold, reverse; the rest of a
line's escape sequences are dropped.
"""

import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SIZE = 14
BG = (24, 24, 27)
FG = (212, 212, 212)
# The 16 basic colours (a dark terminal theme, close to xterm's).
BASIC = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]


def color256(n):
    if n < 16:
        return BASIC[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return (v, v, v)


# Which way each box-drawing character's lines go: left, right, up, down.
BOX = {
    "─": (1, 1, 0, 0), "│": (0, 0, 1, 1), "┌": (0, 1, 0, 1), "┐": (1, 0, 0, 1),
    "└": (0, 1, 1, 0), "┘": (1, 0, 1, 0), "├": (0, 1, 1, 1), "┤": (1, 0, 1, 1),
    "┬": (1, 1, 0, 1), "┴": (1, 1, 1, 0), "┼": (1, 1, 1, 1),
}
# The lower eighths of a cell, one to eight.
BLOCKS = "▁▂▃▄▅▆▇█"

SGR = re.compile(r"\x1b\[([0-9;:]*)m")
OTHER = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][A-Za-z0-9])")


def parse(line, state):
    """Yields (char, fg, bg, bold) for one line; `state` carries the attributes on."""
    pos = 0
    out = []
    line = OTHER.sub(lambda m: "" if not m.group(0).endswith("m") else m.group(0), line)
    for m in SGR.finditer(line):
        out.extend((c, *state.cell()) for c in line[pos:m.start()])
        state.apply(m.group(1))
        pos = m.end()
    out.extend((c, *state.cell()) for c in line[pos:])
    return out


class State:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg, self.bg, self.bold, self.reverse = None, None, False, False

    def apply(self, params):
        codes = [int(p) if p else 0 for p in re.split("[;:]", params)] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 22:
                self.bold = False
            elif c == 7:
                self.reverse = True
            elif c == 27:
                self.reverse = False
            elif 30 <= c <= 37:
                self.fg = BASIC[c - 30]
            elif 90 <= c <= 97:
                self.fg = BASIC[c - 90 + 8]
            elif c == 39:
                self.fg = None
            elif 40 <= c <= 47:
                self.bg = BASIC[c - 40]
            elif 100 <= c <= 107:
                self.bg = BASIC[c - 100 + 8]
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    col = color256(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    col = tuple(codes[i + 2:i + 5])
                    i += 4
                else:
                    col = None
                if c == 38:
                    self.fg = col
                else:
                    self.bg = col
                i += 1
            i += 1

    def cell(self):
        fg, bg = self.fg or FG, self.bg or BG
        if self.reverse:
            fg, bg = bg, fg
        return fg, bg, self.bold


def main():
    src, dst = sys.argv[1], sys.argv[2]
    lines = open(src, encoding="utf-8").read().rstrip("\n").split("\n")
    font = ImageFont.truetype(FONT, SIZE)
    bold = ImageFont.truetype(FONT_BOLD, SIZE)
    cw = round(font.getlength("M"))
    ascent, descent = font.getmetrics()
    ch = ascent + descent + 1
    state = State()
    rows = [parse(line, state) for line in lines]
    cols = max(len(r) for r in rows)
    pad = 8
    img = Image.new("RGB", (cols * cw + 2 * pad, len(rows) * ch + 2 * pad), BG)
    draw = ImageDraw.Draw(img)
    for y, row in enumerate(rows):
        for x, (c, fg, bg, is_bold) in enumerate(row):
            px, py = pad + x * cw, pad + y * ch
            if bg != BG:
                draw.rectangle([px, py, px + cw - 1, py + ch - 1], fill=bg)
            if c == " ":
                continue
            # Box-drawing lines and block elements span the whole cell, so that the panels'
            # borders and the histogram's bars join as on a terminal.
            cx, cy = px + cw // 2, py + ch // 2
            if c in BOX:
                left, right, up, down = BOX[c]
                if left:
                    draw.line([px, cy, cx, cy], fill=fg)
                if right:
                    draw.line([cx, cy, px + cw, cy], fill=fg)
                if up:
                    draw.line([cx, py, cx, cy], fill=fg)
                if down:
                    draw.line([cx, cy, cx, py + ch], fill=fg)
            elif c in BLOCKS:
                top = py + ch - round(ch * (BLOCKS.index(c) + 1) / 8)
                draw.rectangle([px, top, px + cw - 1, py + ch - 1], fill=fg)
            else:
                draw.text((px, py), c, font=bold if is_bold else font, fill=fg)
    img = img.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    img.save(dst, optimize=True)


if __name__ == "__main__":
    main()
