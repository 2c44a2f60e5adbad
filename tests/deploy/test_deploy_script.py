"""The parts of deploy/deploy_test.py (`make deploy-test`) that decide what to build from: the Debian
mirror for debootstrap and the torch wheel this machine's pip uses. The script itself needs root and
Docker and runs as `make deploy-test`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("deploy_test_script", REPO / "deploy" / "deploy_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_debian_mirror_from_deb822_and_one_line_sources():
    script = _script()
    deb822 = ("Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
              "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    assert script.debian_mirror([deb822]) == "http://mirror.example/debian"
    one_line = "deb http://security.debian.org/debian-security bookworm-security main\n" \
               "deb [arch=amd64] http://ftp.example.org/debian bookworm main contrib\n"
    assert script.debian_mirror([one_line]) == "http://ftp.example.org/debian"
    assert script.debian_mirror(["deb http://x/ubuntu jammy main\n"]) == "http://deb.debian.org/debian"


def test_torch_wheel_comes_from_pips_find_links(tmp_path, monkeypatch):
    script = _script()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    assert wheels in script.pip_find_links()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"not really a wheel")
    monkeypatch.setattr(script, "REPO", tmp_path)
    (tmp_path / "docker" / "wheels").mkdir(parents=True)
    monkeypatch.setattr(script, "pip_find_links", lambda: [wheels])
    assert script.stage_torch_wheel() is True
    assert [p.name for p in (tmp_path / "docker" / "wheels").iterdir()] == [
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"]
    monkeypatch.setattr(script, "pip_find_links", lambda: [])
    assert script.stage_torch_wheel() is False  # the image build then uses the PyTorch CPU index


def test_a_failure_ends_with_one_line_saying_why(tmp_path, monkeypatch, capsys):
    script = _script()
    monkeypatch.setattr(script, "CACHE", tmp_path)

    def no_packages():
        raise script.Failed("missing Debian packages docker.io and not root with apt-get to install them")

    monkeypatch.setattr(script, "install_missing_packages", no_packages)
    monkeypatch.setattr(script, "start_dockerd", lambda: (_ for _ in ()).throw(AssertionError("not reached")))
    assert script.main() == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "deploy-test: FAILED (missing Debian packages docker.io and not root with apt-get to install them)"
