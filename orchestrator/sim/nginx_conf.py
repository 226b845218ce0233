"""Read the part of an nginx configuration a load balancer in front of engines uses.

Understood: `include` (globs, relative to the main file's directory), `http { upstream NAME {
least_conn; server HOST:PORT ...; } server { listen [HOST:]PORT; location [=] PREFIX {
proxy_pass http://NAME[/URI]; | return CODE [TEXT]; } } }`. Other directives are skipped, as
the simulator only imitates where nginx listens and where it sends each request. Syntax
errors are reported the way nginx does: `[emerg] ... in FILE:LINE`.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from orchestrator.sim.settings import (
    Location,
    NginxSettings,
    SimConfigError,
    Upstream,
    VirtualServer,
)


@dataclass
class _Block:
    name: str
    args: list[str]
    file: str
    line: int
    children: list[_Block] = field(default_factory=list)
    is_block: bool = False


def _tokenize(text: str, file: str) -> list[tuple[str, int, bool]]:
    """Tokens with their line and whether they were quoted; `{`, `}` and `;` are tokens."""
    tokens: list[tuple[str, int, bool]] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "{};":
            tokens.append((ch, line, False))
            i += 1
        elif ch in "\"'":
            quote, start_line = ch, line
            i += 1
            buf = []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                if text[i] == "\n":
                    line += 1
                buf.append(text[i])
                i += 1
            if i >= n:
                raise SimConfigError(
                    f"nginx: [emerg] unexpected end of file in {file}:{start_line}"
                )
            i += 1
            tokens.append(("".join(buf), start_line, True))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in "{};\"'":
                i += 1
            tokens.append((text[start:i], line, False))
    return tokens


def _parse_file(path: str, base_dir: str, depth: int = 0) -> list[_Block]:
    if depth > 10:
        raise SimConfigError(f"nginx: [emerg] include nesting too deep at {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise SimConfigError(
            f'nginx: [emerg] open() "{path}" failed ({error.strerror}); '
            "mount the config or pass -c FILE"
        ) from None
    tokens = _tokenize(text, path)
    position = 0

    def parse_block(closing: bool) -> list[_Block]:
        nonlocal position
        items: list[_Block] = []
        words: list[str] = []
        word_line = 0
        while position < len(tokens):
            token, line, quoted = tokens[position]
            position += 1
            if not quoted and token == ";":
                if not words:
                    raise SimConfigError(f'nginx: [emerg] unexpected ";" in {path}:{line}')
                if words[0] == "include":
                    items.extend(_include(words[1:], base_dir, path, word_line, depth))
                else:
                    items.append(_Block(words[0], words[1:], path, word_line))
                words = []
            elif not quoted and token == "{":
                if not words:
                    raise SimConfigError(f'nginx: [emerg] unexpected "{{" in {path}:{line}')
                block = _Block(words[0], words[1:], path, word_line, is_block=True)
                block.children = parse_block(closing=True)
                items.append(block)
                words = []
            elif not quoted and token == "}":
                if not closing or words:
                    raise SimConfigError(f'nginx: [emerg] unexpected "}}" in {path}:{line}')
                return items
            else:
                if not words:
                    word_line = line
                words.append(token)
        if closing or words:
            raise SimConfigError(f'nginx: [emerg] unexpected end of file, expecting "}}" in {path}')
        return items

    return parse_block(closing=False)


def _include(args: list[str], base_dir: str, path: str, line: int, depth: int) -> list[_Block]:
    if len(args) != 1:
        raise SimConfigError(
            f'nginx: [emerg] invalid number of arguments in "include" in {path}:{line}'
        )
    pattern = args[0] if os.path.isabs(args[0]) else os.path.join(base_dir, args[0])
    matches = sorted(glob.glob(pattern))
    if not matches and not glob.has_magic(pattern):
        raise SimConfigError(
            f'nginx: [emerg] open() "{pattern}" failed (No such file) in {path}:{line}'
        )
    items: list[_Block] = []
    for match in matches:
        items.extend(_parse_file(match, base_dir, depth + 1))
    return items


def load_nginx_config(path: str) -> NginxSettings:
    """The listeners, locations and upstreams of the nginx config at `path` (and its includes)."""
    base_dir = os.path.dirname(os.path.abspath(path))
    top = _parse_file(path, base_dir)
    # Accept both a full nginx.conf (with `http {}`) and a conf.d snippet (server/upstream only).
    http_items: list[_Block] = []
    for item in top:
        if item.is_block and item.name == "http":
            http_items.extend(item.children)
        elif item.name in ("server", "upstream"):
            http_items.append(item)
    upstreams: dict[str, Upstream] = {}
    servers: list[VirtualServer] = []
    for item in http_items:
        if item.is_block and item.name == "upstream":
            upstream = _upstream(item)
            upstreams[upstream.name] = upstream
    for item in http_items:
        if item.is_block and item.name == "server":
            servers.extend(_server(item, upstreams))
    if not servers:
        raise SimConfigError(f"nginx: [emerg] no server block with a listen directive in {path}")
    return NginxSettings(config_file=path, servers=tuple(servers), upstreams=upstreams)


def _upstream(block: _Block) -> Upstream:
    if len(block.args) != 1:
        raise SimConfigError(f"nginx: [emerg] upstream needs one name in {block.file}:{block.line}")
    servers = []
    least_conn = False
    for child in block.children:
        if child.name == "least_conn":
            least_conn = True
        elif child.name == "server":
            if not child.args:
                raise SimConfigError(
                    f'nginx: [emerg] invalid number of arguments in "server" in {child.file}:{child.line}'
                )
            address = child.args[0].removeprefix("http://")
            if ":" not in address:
                address += ":80"
            weight = 1
            for arg in child.args[1:]:
                if arg.startswith("weight="):
                    weight = max(1, int(arg.split("=", 1)[1]))
            if "backup" in child.args[1:] or "down" in child.args[1:]:
                continue
            servers.extend([address] * weight)
    if not servers:
        raise SimConfigError(
            f'nginx: [emerg] no servers are inside upstream "{block.args[0]}" in {block.file}:{block.line}'
        )
    return Upstream(name=block.args[0], servers=tuple(servers), least_conn=least_conn)


def _server(block: _Block, upstreams: dict[str, Upstream]) -> list[VirtualServer]:
    listens: list[tuple[str, int]] = []
    locations: list[Location] = []
    for child in block.children:
        if child.name == "listen" and child.args:
            listens.append(_listen(child))
        elif child.is_block and child.name == "location":
            locations.append(_location(child, upstreams))
    if not listens:
        listens.append(("0.0.0.0", 80))
    return [VirtualServer(host, port, tuple(locations)) for host, port in listens]


def _listen(child: _Block) -> tuple[str, int]:
    address = child.args[0]
    host = "0.0.0.0"
    if address.startswith("["):
        host_part, _, port_part = address[1:].partition("]:")
        host, address = host_part, port_part or "80"
        if host == "::":
            host = "0.0.0.0"
    elif ":" in address:
        host, _, address = address.rpartition(":")
    elif not address.isdigit():
        host, address = address, "80"
    try:
        return host, int(address)
    except ValueError:
        raise SimConfigError(
            f'nginx: [emerg] invalid port in "{child.args[0]}" of the "listen" directive in '
            f"{child.file}:{child.line}"
        ) from None


def _location(block: _Block, upstreams: dict[str, Upstream]) -> Location:
    args = block.args
    exact = bool(args) and args[0] == "="
    if args and args[0] in ("=", "^~"):
        args = args[1:]
    if len(args) != 1:
        raise SimConfigError(
            f"nginx: [emerg] the simulator reads prefix locations only, in {block.file}:{block.line}"
        )
    prefix = args[0]
    for child in block.children:
        if child.name == "proxy_pass" and child.args:
            target = child.args[0]
            if not target.startswith("http://"):
                raise SimConfigError(
                    f'nginx: [emerg] invalid URL prefix in "{target}" in {child.file}:{child.line}'
                )
            rest = target[len("http://") :]
            name, slash, uri = rest.partition("/")
            if name not in upstreams and ":" not in name:
                raise SimConfigError(
                    f'nginx: [emerg] host not found in upstream "{name}" in {child.file}:{child.line}'
                )
            return Location(prefix, exact, proxy_to=name, proxy_path=(slash + uri) or None)
        if child.name == "return" and child.args:
            try:
                status = int(child.args[0])
            except ValueError:
                raise SimConfigError(
                    f'nginx: [emerg] invalid return code "{child.args[0]}" in {child.file}:{child.line}'
                ) from None
            text = " ".join(child.args[1:])
            return Location(prefix, exact, return_status=status, return_text=text)
    return Location(prefix, exact, return_status=404, return_text="")
