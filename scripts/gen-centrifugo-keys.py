#!/usr/bin/env python3
"""Lists every configuration key of Centrifugo v6 from its Go struct tags.

Used once to seed crates/pushwire-server/src/config/centrifugo/keys.txt: it reads the
`mapstructure` and `default` tags of internal/config/config.go and internal/configtypes/*.go
of a Centrifugo checkout (a directory holding those files, flattened) and prints
`key<TAB>go type<TAB>default`, one key a line. `[]` marks the elements of a list of objects.
It parses text only; nothing of Centrifugo is built or run.
"""
import os
import re
import sys

src = sys.argv[1]
text = ""
for name in sorted(os.listdir(src)):
    if name.endswith(".go") and not name.endswith("_test.go"):
        text += open(os.path.join(src, name)).read() + "\n"

structs = {}
aliases = {}
for m in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.S | re.M):
    fields = []
    for line in m.group(2).split("\n"):
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        fm = re.match(r"^(\w+)\s+([\w\.\*\[\]]+)\s+`(.*)`", line)
        em = re.match(r"^\*?([\w\.]+)\s+`(.*)`", line)
        if fm:
            name, typ, tags = fm.groups()
        elif em:
            name, typ, tags = None, em.group(1), em.group(2)
        else:
            continue
        ms = re.search(r'mapstructure:"([^"]*)"', tags)
        if not ms:
            continue
        d = re.search(r'default:"([^"]*)"', tags)
        fields.append((ms.group(1), typ, d.group(1) if d else ""))
    structs[m.group(1)] = fields
for m in re.finditer(r"^type (\w+) (\[\][\w\.]+|map\[[^\n]*|[\w\.]+)$", text, re.M):
    aliases[m.group(1)] = m.group(2)


def resolve(t):
    t = t.lstrip("*").replace("configtypes.", "")
    while t in aliases and t not in structs:
        t = aliases[t].lstrip("*").replace("configtypes.", "")
    return t


out = []


def walk(prefix, sname):
    for key, typ, default in structs[sname]:
        if key == ",squash":
            walk(prefix, resolve(typ))
            continue
        path = f"{prefix}.{key}" if prefix else key
        r = resolve(typ)
        if r in structs:
            walk(path, r)
        elif r.startswith("[]") and resolve(r[2:]) in structs:
            out.append((path, "[]" + resolve(r[2:]), default))
            walk(path + "[]", resolve(r[2:]))
        else:
            out.append((path, typ, default))


walk("", "Config")
for path, typ, default in out:
    print(f"{path}\t{typ}\t{default}")
