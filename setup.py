"""The build step pyproject.toml cannot say: the DAG files (dags/, where Airflow's dags folder points
in the dev tree) go into the wheel as billing_sync/dags/, for `huntress-cw-billing-dags` to copy
into a deployment's dags folder. Everything else about the package is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DAGS = Path(__file__).resolve().parent / "dags"


class BuildWithDags(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the dev install reads dags/ in the work tree (billing_sync.dag_files)
        target = Path(self.build_lib) / "billing_sync" / "dags"
        self.mkpath(str(target))
        for dag_file in sorted(DAGS.glob("*.py")):
            self.copy_file(str(dag_file), str(target / dag_file.name))


setup(cmdclass={"build_py": BuildWithDags})
