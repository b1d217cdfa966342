# Installs the build tree into a temporary prefix and uses it as a user
# would, from a directory outside the source tree and with no
# LD_LIBRARY_PATH: bin/leakguard (RPATH $ORIGIN/../lib) runs `--version` and
# `doctor`; the package under <prefix>/${LEAKGUARD_PYTHON_DIR} imports
# (its extension finds libleakguard through its RPATH) and `python -m
# leakguard` runs the installed binary.

set(work "${LEAKGUARD_BINARY_DIR}/install-python-test")
file(REMOVE_RECURSE "${work}")
set(prefix "${work}/prefix")
file(MAKE_DIRECTORY "${work}/cwd")
unset(ENV{LD_LIBRARY_PATH})
unset(ENV{PYTHONPATH})

# run(EXPECT_RC ARGS...): runs in ${work}/cwd; sets last_output.
function(run expect)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY "${work}/cwd"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL "${expect}")
    message(FATAL_ERROR "expected status ${expect}, got ${rc}: ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

if(LEAKGUARD_CONFIG)
  run(0 ${CMAKE_COMMAND} --install "${LEAKGUARD_BINARY_DIR}" --prefix "${prefix}" --config "${LEAKGUARD_CONFIG}")
else()
  run(0 ${CMAKE_COMMAND} --install "${LEAKGUARD_BINARY_DIR}" --prefix "${prefix}")
endif()
set(package "${prefix}/${LEAKGUARD_PYTHON_DIR}/leakguard")
foreach(f "${prefix}/bin/leakguard" "${package}/__init__.py" "${package}/__main__.py"
          "${package}/pytest_plugin.py" "${package}/middleware.py" "${package}/_paths.py"
          "${package}/_leakguard.pyi" "${package}/py.typed")
  if(NOT EXISTS "${f}")
    message(FATAL_ERROR "install is missing ${f}")
  endif()
endforeach()
file(GLOB extension "${package}/_leakguard*.so")
if(NOT extension)
  message(FATAL_ERROR "install is missing ${package}/_leakguard*.so")
endif()

# bin/leakguard
run(0 "${prefix}/bin/leakguard" --version)
if(NOT last_output MATCHES "^leakguard 0\\.1\\.0 \\(Python 3\\.[0-9]+")
  message(FATAL_ERROR "unexpected bin/leakguard --version: ${last_output}")
endif()
set(version_output "${last_output}")
file(WRITE "${work}/cwd/leaky.py" "_kept = []\n\ndef leak():\n    _kept.append(bytearray(4096))\n")
run(1 "${prefix}/bin/leakguard" doctor leaky.py:leak --repeat 6)
if(NOT last_output MATCHES "global_state" OR NOT last_output MATCHES "leaky\\._kept")
  message(FATAL_ERROR "unexpected bin/leakguard doctor output: ${last_output}")
endif()

# The package, from the prefix's site-packages.
set(env ${CMAKE_COMMAND} -E env "PYTHONPATH=${prefix}/${LEAKGUARD_PYTHON_DIR}" PYTHONDONTWRITEBYTECODE=1)
file(WRITE "${work}/cwd/use.py"
  "import leakguard\nprint(leakguard._leakguard.__file__)\nprint(leakguard.lru_cache(maxsize=2)(abs)(-3))\n")
run(0 ${env} ${Python3_EXECUTABLE} use.py)
if(NOT last_output MATCHES "^${prefix}/${LEAKGUARD_PYTHON_DIR}/leakguard/_leakguard[^\n]*\n3\n$")
  message(FATAL_ERROR "the module was not imported from the prefix: ${last_output}")
endif()
run(0 ${env} ${Python3_EXECUTABLE} -m leakguard --version)
if(NOT last_output STREQUAL version_output)
  message(FATAL_ERROR "python -m leakguard --version said '${last_output}', bin/leakguard '${version_output}'")
endif()
run(1 ${env} ${Python3_EXECUTABLE} -m leakguard doctor leaky.py:leak --repeat 6)
message(STATUS "installed bin/leakguard and ${LEAKGUARD_PYTHON_DIR}/leakguard work")
file(REMOVE_RECURSE "${work}")
