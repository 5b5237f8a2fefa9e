"""The README opens with the two set-up commands, and CI runs the same test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_setup_commands():
    assert (ROOT / "README.md").read_text().startswith("# quantguard\n\n```bash\n")
    install_and_demo, install_and_test = _setup_commands()
    assert install_and_demo.endswith("quantguard demo")
    assert "pytest" in install_and_test


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "pip install torch==2.13.0" in ci
    assert _setup_commands()[1] in ci


def test_torch_is_not_pinned():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"torch>=' in pyproject and "torch==" not in pyproject
