"""prompting: a Bittensor validator with swappable generation backends (hf, vllm, openai)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def requirements(name: str) -> list[str]:
    lines = (HERE / "requirements" / name).read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


setup(
    name="prompting",
    version="0.1.0",
    description=__doc__,
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["prompting", "prompting.*"]),
    python_requires=">=3.10,<3.13",
    install_requires=requirements("base.txt"),
    extras_require={"vllm": requirements("vllm.txt"), "dev": requirements("dev.txt")},
)
