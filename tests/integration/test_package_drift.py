"""Installing another version of a package between two trials is package drift."""
from __future__ import annotations

import os
import site
import subprocess
import venv

import pytest

from xg_testing import ROOT

SCRIPT = """
import experigraph as xg
ex = xg.Experiment(id="pkgdrift")  # the store comes from EXPERIGRAPH_BACKEND
a = ex.parameter("a")
@ex.result
def ident(a):
    import xgdriftpkg
    return xgdriftpkg.VERSION
ident(a)
print(ex.set_parameters(a=1).compute())
"""


def _install(site_packages, version):
    """Install xgdriftpkg as a wheel installer lays it out (no build tools needed)."""
    for old in site_packages.glob("xgdriftpkg-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    package = site_packages / "xgdriftpkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(f"VERSION = {version!r}\n")
    info = site_packages / f"xgdriftpkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: xgdriftpkg\n"
                                   f"Version: {version}\n")
    (info / "INSTALLER").write_text("test\n")
    (info / "RECORD").write_text("")


@pytest.mark.slow
def test_package_version_change_is_reported_once(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    script = tmp_path / "exp.py"
    script.write_text(SCRIPT)
    store = tmp_path / "store"

    site_packages = next(env_dir.glob("lib/python*/site-packages"))
    # The child venv sees the base interpreter's packages (system_site_packages), but
    # when the tests themselves run in a virtualenv their packages are in that venv:
    # add this interpreter's site directories after the child's own.
    parents = [p for p in site.getsitepackages() + [site.getusersitepackages()]
               if os.path.isdir(p)]
    (site_packages / "zz_parent_site.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents))

    def install(version):
        _install(site_packages, version)

    def trial():
        proc = subprocess.run([python, str(script)], capture_output=True,
                              text=True, timeout=300,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                   # a same-size edit within a second must not be read
                                   # from a stale .pyc
                                   "PYTHONDONTWRITEBYTECODE": "1",
                                   "HOME": str(tmp_path), "EXPERIGRAPH_BACKEND": str(store)})
        assert proc.returncode == 0, proc.stderr
        return proc

    install("1.0")
    first = trial()
    assert first.stdout.strip() == "1.0"
    assert "have been changed" not in first.stderr
    install("2.0")
    second = trial()
    assert second.stdout.strip() == "2.0"
    err = second.stderr
    assert err.count("Installed Python packages have been changed") == 1  # at load, not again
    assert "-xgdriftpkg==1.0" in err and "+xgdriftpkg==2.0" in err

    import experigraph as xg

    ex = xg.Experiment(id="pkgdrift", backend=store)
    (event,) = [d for d in ex.get_trial(2).drift if d.subject == "packages"]
    assert event.kind == "environment"
    assert "+xgdriftpkg==2.0" in event.diff
    assert "xgdriftpkg==2.0" in ex.get_python_packages(2)
    assert "xgdriftpkg==1.0" in ex.get_python_packages(1)
    assert ex.compare(1, 2).environment["packages"] == list(event.diff)
