"""A user's own extension of sfli, kept outside the sfli package: a task, an architecture and an
initialisation. A study names them by import path (``my_sfli_ext.poisson3d:Poisson3D``); installed as a
package (``pip install -e examples/poisson3d``), they are also registered under short names through the entry
points declared in this folder's pyproject.toml."""
