#!/usr/bin/python3
"""Converts docs/openapi.yaml to the JSON the api serves at /openapi.json.

Run by the build. Timestamps stay strings (YAML would otherwise turn an
unquoted example time into a date object), so the JSON says exactly what the
YAML says.
"""
import json
import sys

import yaml


class Loader(yaml.SafeLoader):
    pass


Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

with open(sys.argv[1], encoding="utf-8") as src:
    doc = yaml.load(src, Loader=Loader)
with open(sys.argv[2], "w", encoding="utf-8") as dst:
    json.dump(doc, dst, separators=(",", ":"), ensure_ascii=False)
