"""The files an admin deploys with: systemd units (config/systemd/) and the nginx site
(config/nginx/digest.conf). Checked by the tools that will read them, `systemd-analyze
verify` and `nginx -t`, each skipped only where the tool is missing (CI installs both),
and against the app's own limits (issue 17, defects 3 and 6)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from digest import config, imports
from digest.web.admin.imports import FORM_OVERHEAD

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "config" / "systemd"
NGINX_SITE = ROOT / "config" / "nginx" / "digest.conf"
OPERATIONS = ROOT / "docs" / "operations.md"
#: Where docs/operations.md installs the program; the units' ExecStart runs it.
INSTALLED = "/opt/digest/bin/digest"
UNIT_NAMES = ("digest.service", "digest-worker@.service")


def _sections(text: str) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
        else:
            key, _, value = line.partition("=")
            sections[current].append((key, value))
    return sections


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_is_complete(name: str) -> None:
    unit = _sections((UNITS / name).read_text(encoding="utf-8"))
    assert set(unit) == {"Unit", "Service", "Install"}
    service = dict(unit["Service"])
    assert service["User"] == service["Group"] == "digest"
    assert service["WorkingDirectory"] == "/var/lib/digest"
    assert service["StateDirectory"] == "digest"
    assert service["EnvironmentFile"] == "/etc/digest/env"
    # digest.config.load reads DIGEST_CONFIG: without it a worker ran on the defaults
    # (an outbox in its working directory) and looked fine.
    assert service["Environment"] == "DIGEST_CONFIG=/etc/digest/digest.toml"
    assert service["ExecStart"].split()[0] == INSTALLED
    assert service["KillSignal"] == "SIGTERM"
    assert "/var/lib/digest" in service["ReadWritePaths"].split()
    assert dict(unit["Install"]) == {"WantedBy": "multi-user.target"}
    after = dict(unit["Unit"])["After"].split()
    assert {"network-online.target", "postgresql.service"} <= set(after)


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_unit_values_carry_no_comments(name: str) -> None:
    """systemd takes `EnvironmentFile=/etc/digest/env  # secrets` as a path ending in
    '# secrets': a comment is only a line of its own."""
    for lines in _sections((UNITS / name).read_text(encoding="utf-8")).values():
        for key, value in lines:
            assert "#" not in value, f"{name}: {key}={value}"


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_systemd_analyze_verify_accepts_unit(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists and is executable, and /opt/digest
    # is not installed here: the copy runs this virtualenv's `digest` instead, the same
    # entry point, and is otherwise the shipped file byte for byte. The `digest` user
    # need not exist: systemd 252's verify does not look it up (any complaint it made
    # would fail the test below, which accepts no output at all).
    program = Path(sys.executable).parent / "digest"
    assert program.is_file()
    text = (UNITS / name).read_text(encoding="utf-8")
    assert text.count(INSTALLED) == 1
    copies = [tmp_path / name]
    if name.endswith("@.service"):  # the template, and an instance of it
        copies.append(tmp_path / name.replace("@.", "@1."))
    for copy in copies:
        copy.write_text(text.replace(INSTALLED, str(program)), encoding="utf-8")
        result = subprocess.run([analyze, "verify", "--man=no", str(copy)],
                                capture_output=True, text=True, timeout=60, cwd=tmp_path)
        # Unknown keys and bad values are warnings with status 0: no output is the bar.
        assert (result.returncode, result.stdout + result.stderr) == (0, "")


def _nginx_directives(text: str) -> list[list[str]]:
    text = re.sub(r"#.*", "", text)
    return [stmt.split() for stmt in re.split(r"[;{}]", text) if stmt.strip()]


def _size_bytes(value: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].isalpha() else int(value)


def test_nginx_site_agrees_with_the_app() -> None:
    directives = _nginx_directives(NGINX_SITE.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for words in directives:
        found.setdefault(words[0], words[1:])
    assert "http2" not in found, "`http2 on;` needs nginx 1.25.1; Debian 12 has 1.22"
    assert ["443", "ssl", "http2"] in [w[1:] for w in directives if w[0] == "listen"]
    # The console's import form: the file and the form around it.
    assert _size_bytes(found["client_max_body_size"][0]) >= imports.MAX_UPLOAD + FORM_OVERHEAD
    defaults = config.defaults()
    assert found["proxy_pass"] == [
        f"http://{defaults['web.host']}:{defaults['web.port']}"]
    # digest answers 503 after [database] timeout; nginx must wait longer than that.
    assert int(found["proxy_read_timeout"][0].rstrip("s")) > defaults["database.timeout"]
    for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto"):
        assert header in [w[1] for w in directives if w[0] == "proxy_set_header"]
    # Kept off the public site, as operations.md's Monitoring says.
    metrics = directives.index(["location", "=", "/metrics"])
    assert directives[metrics + 1] == ["return", "404"], directives[metrics:metrics + 2]


def _self_signed(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (for the test certificate)")
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=news.example.org", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None:
        pytest.skip("nginx is not installed (CI installs nginx-light)")
    cert, key = _self_signed(tmp_path)
    site = NGINX_SITE.read_text(encoding="utf-8")
    letsencrypt = "/etc/letsencrypt/live/news.example.org/"
    assert site.count(letsencrypt) == 2
    site = (site.replace(letsencrypt + "fullchain.pem", str(cert))
            .replace(letsencrypt + "privkey.pem", str(key)))
    (tmp_path / "digest.conf").write_text(site, encoding="utf-8")
    # The site is a pair of server blocks, included in http {} as Debian's nginx.conf
    # includes sites-enabled/*; every path nginx writes is under tmp_path.
    temps = "\n".join(f"    {kind}_temp_path {tmp_path}/{kind};"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n{temps}\n    include {tmp_path}/digest.conf;\n}}\n",
        encoding="utf-8")
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
         "-c", str(tmp_path / "nginx.conf")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr


def test_operations_uses_the_shipped_files() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    for shipped in ("config/systemd/digest.service", "config/systemd/digest-worker@.service",
                    "config/nginx/digest.conf"):
        assert shipped in text
    # No copies to drift from the files: the fragments it had carried an inline comment
    # in EnvironmentFile=, `http2 on;` and 2 MB bodies.
    assert not re.search(r"^(EnvironmentFile|ExecStart)=", text, re.MULTILINE)
    assert "```nginx" not in text
