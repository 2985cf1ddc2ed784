#!/usr/bin/env bash
# Opens the notebooks in Jupyter: installs the Debian packages (jupyter-notebook among them),
# builds the Python package into build/pybind, then starts Debian's Jupyter Notebook server on
# http://127.0.0.1:8888 (the URL with its login token is printed) with notebooks/ open and the
# built `vhostlab` importable in every kernel (PYTHONPATH; kernels run on /usr/bin/python3).
#
#   bash tools/notebook.sh                    # set up, build, serve until Ctrl-C
#   bash tools/notebook.sh --port=9999        # other arguments go to `jupyter notebook`
#   bash tools/notebook.sh --no-build         # serve the current build as it is
#   bash tools/notebook.sh --install-kernel   # for your own Jupyter: a kernel that finds the
#                                             # package, "Python 3 (vhostlab)"; then exit
#
# On a remote machine, forward the port (ssh -L 8888:127.0.0.1:8888 HOST) and open the printed
# URL locally. VHOSTLAB_BUILD_DIR picks another build directory (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build=${VHOSTLAB_BUILD_DIR:-build}
case "$build" in /*) ;; *) build=$repo/$build ;; esac

do_build=1 install_kernel=0 args=()
for a in "$@"; do
  case "$a" in
    --no-build) do_build=0 ;;
    --install-kernel) install_kernel=1 ;;
    *) args+=("$a") ;;
  esac
done

if [ "$do_build" = 1 ]; then
  bash tools/setup.sh
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target vhostlab vhostlab_python
fi
if ! ls "$build"/pybind/vhostlab/_core*.so >/dev/null 2>&1; then
  echo "notebook.sh: no built package in $build/pybind (run without --no-build)" >&2
  exit 1
fi

if [ "$install_kernel" = 1 ]; then
  # A kernelspec in the user's Jupyter data dir (~/.local/share/jupyter/kernels/vhostlab):
  # Debian's Python with the build tree on its path. Any Jupyter of this user lists it.
  /usr/bin/python3 -m ipykernel install --user --name vhostlab \
    --display-name "Python 3 (vhostlab)" \
    --env PYTHONPATH "$build/pybind" --env VHOSTLAB_REPO "$repo" \
    --env PYDEVD_DISABLE_FILE_VALIDATION 1
  exit 0
fi

export PYTHONPATH="$build/pybind${PYTHONPATH:+:$PYTHONPATH}"
export VHOSTLAB_REPO="$repo"        # the notebooks read results/ from here
export PYDEVD_DISABLE_FILE_VALIDATION=1
# Defaults for what the arguments do not set (Jupyter refuses an option given twice).
opts=(--no-browser)
given() { case " ${args[*]-} " in *" --$1="* | *" --$1 "* | *" --NotebookApp.$1="*) return 0 ;; esac; return 1; }
given ip || opts+=(--ip=127.0.0.1)
given port || opts+=(--port=8888)
given notebook-dir || opts+=(--notebook-dir="$repo/notebooks")
[ "$(id -u)" -ne 0 ] || opts+=(--allow-root)  # the README commands run as root
exec /usr/bin/python3 -m notebook "${opts[@]}" ${args[@]+"${args[@]}"}
