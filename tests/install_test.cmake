# Installs the build tree into a temporary prefix, then builds and runs the
# consumer project in tests/consumer against it twice: once through
# find_package(leakguard CONFIG), once through pkg-config.

set(work "${LEAKGUARD_BINARY_DIR}/install-test")
file(REMOVE_RECURSE "${work}")
set(prefix "${work}/prefix")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

if(LEAKGUARD_CONFIG)
  run(${CMAKE_COMMAND} --install "${LEAKGUARD_BINARY_DIR}" --prefix "${prefix}" --config "${LEAKGUARD_CONFIG}")
else()
  run(${CMAKE_COMMAND} --install "${LEAKGUARD_BINARY_DIR}" --prefix "${prefix}")
endif()
foreach(f include/leakguard/python/ref.h lib/cmake/leakguard/leakguardConfig.cmake
          lib/pkgconfig/leakguard.pc bin/leakguard)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "install is missing ${f}")
  endif()
endforeach()

# 1. find_package(leakguard CONFIG)
run(${CMAKE_COMMAND} -S "${LEAKGUARD_CONSUMER_DIR}" -B "${work}/cmake-build"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
    "-DPython3_EXECUTABLE=${Python3_EXECUTABLE}")
run(${CMAKE_COMMAND} --build "${work}/cmake-build")
run("${work}/cmake-build/consumer")
if(NOT last_output MATCHES "consumer: leakguard 0\\.1\\.0, Python 3\\.[0-9]+, 6 \\* 7 = 42")
  message(FATAL_ERROR "unexpected consumer output (find_package): ${last_output}")
endif()
message(STATUS "find_package consumer: ${last_output}")

# 2. pkg-config
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig")
run(${PKG_CONFIG} --cflags --libs leakguard)
string(STRIP "${last_output}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
run(${CMAKE_CXX_COMPILER} -std=c++20 "${LEAKGUARD_CONSUMER_DIR}/consumer.cc"
    -o "${work}/consumer-pc" ${flags})
run("${work}/consumer-pc")
if(NOT last_output MATCHES "consumer: leakguard 0\\.1\\.0, Python 3\\.[0-9]+, 6 \\* 7 = 42")
  message(FATAL_ERROR "unexpected consumer output (pkg-config): ${last_output}")
endif()
message(STATUS "pkg-config consumer: ${last_output}")

# 3. The embedding examples, each a project of its own against the prefix:
# a pybind11 host and a Py_InitializeFromConfig host. Each must see the
# detector name its plugin's leaking line.
function(example name)
  run(${CMAKE_COMMAND} -S "${LEAKGUARD_EXAMPLES_DIR}/${name}" -B "${work}/${name}"
      "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
      "-DPython3_EXECUTABLE=${Python3_EXECUTABLE}")
  run(${CMAKE_COMMAND} --build "${work}/${name}")
  run("${work}/${name}/${name}")
  foreach(pattern IN LISTS ARGN)
    if(NOT last_output MATCHES "${pattern}")
      message(FATAL_ERROR "${name}: output does not match '${pattern}':\n${last_output}")
    endif()
  endforeach()
  message(STATUS "${name}:\n${last_output}")
endfunction()
execute_process(COMMAND "${Python3_EXECUTABLE}" -c
    "import sys, sysconfig; print(int(sys.version_info < (3, 12) and not sysconfig.get_config_var('Py_GIL_DISABLED')))"
  OUTPUT_VARIABLE pybind11_fits OUTPUT_STRIP_TRAILING_WHITESPACE)
if(LEAKGUARD_EXAMPLES_DIR AND NOT pybind11_fits)
  # Debian 12's pybind11 (2.10) predates CPython 3.12 and free threading.
  message(STATUS "pybind11_host: skipped (Debian's pybind11 2.10 supports CPython up to 3.11)")
elseif(LEAKGUARD_EXAMPLES_DIR)
  example(pybind11_host
    "10000 plugin runs under guards"
    "detector: growth since the detector started: .*Python heap \\+[0-9.]+ MiB"
    "detector's top line: plugin\\.py:10 [0-9.]+ MiB")
endif()
if(LEAKGUARD_EXAMPLES_DIR)
  example(pyconfig_host
    "10000 requests handled"
    "detector's top line: plugin\\.py:13 [0-9.]+ MiB"
    "ReportNow: on demand: growth since the detector started"
    "ReportNow's top line: plugin\\.py:13 [0-9.]+ MiB"
    "finalized with the detector running \\(yes\\): ok, detector stopped: yes")
endif()
file(REMOVE_RECURSE "${work}")
