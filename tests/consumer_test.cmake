# Builds tests/consumer, another CMake project, against this one and runs it (ctest -R consumer):
#   cmake -DMODE=add_subdirectory|find_package -DSOURCE_DIR=<autodiff source tree>
#         -DBUILD_DIR=<this build, installed in find_package mode> -DWORK_DIR=<scratch dir>
#         -DGENERATOR=... -DCXX_COMPILER=... -DCONFIG=<this build's configuration>
#         [-DWARNINGS_AS_ERRORS=ON|OFF -DNATIVE=ON|OFF] -P consumer_test.cmake
# The consumer itself is built in Release, with 2 jobs; in add_subdirectory mode, with the
# library built again from SOURCE_DIR with AUTODIFF_WARNINGS_AS_ERRORS and AUTODIFF_NATIVE as given.
# Everything it writes is under WORK_DIR, emptied first (but for cmake --install's
# install_manifest.txt in BUILD_DIR).
cmake_minimum_required(VERSION 3.25)

foreach(var MODE SOURCE_DIR BUILD_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "consumer_test.cmake: -D${var}=... is required")
  endif()
endforeach()
set(JOBS 2)
set(CONSUMER_CONFIG Release)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(consumer_build "${WORK_DIR}/build")

if(MODE STREQUAL "find_package")
  set(prefix "${WORK_DIR}/prefix")
  set(config_option)
  if(NOT "${CONFIG}" STREQUAL "")
    set(config_option --config "${CONFIG}")
  endif()
  run("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" ${config_option})
  # The installed package must be relocatable: no path of the source tree or of this build.
  file(GLOB_RECURSE package_files "${prefix}/*.cmake")
  if(NOT package_files)
    message(FATAL_ERROR "no CMake package files installed under ${prefix}")
  endif()
  foreach(file IN LISTS package_files)
    file(READ "${file}" text)
    foreach(dir "${SOURCE_DIR}" "${BUILD_DIR}")
      string(FIND "${text}" "${dir}" at)
      if(NOT at EQUAL -1)
        message(FATAL_ERROR "${file} mentions ${dir}")
      endif()
    endforeach()
  endforeach()
  set(mode_options -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
elseif(MODE STREQUAL "add_subdirectory")
  if(NOT DEFINED WARNINGS_AS_ERRORS)
    set(WARNINGS_AS_ERRORS OFF)
  endif()
  if(NOT DEFINED NATIVE)
    set(NATIVE ON)
  endif()
  set(mode_options -DAUTODIFF_SOURCE_DIR=${SOURCE_DIR}
      -DAUTODIFF_WARNINGS_AS_ERRORS=${WARNINGS_AS_ERRORS} -DAUTODIFF_NATIVE=${NATIVE})
else()
  message(FATAL_ERROR "MODE is '${MODE}': expected add_subdirectory or find_package")
endif()

run("${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer" -B "${consumer_build}" -G "${GENERATOR}"
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${CONSUMER_CONFIG}
    -DAUTODIFF_CONSUMER_MODE=${MODE} ${mode_options})

if(MODE STREQUAL "find_package")
  # The package found must be the one just installed, not another one on this machine.
  file(STRINGS "${consumer_build}/CMakeCache.txt" found REGEX "^autodiff_DIR:")
  string(REGEX REPLACE "^[^=]*=" "" found "${found}")
  string(FIND "${found}" "${prefix}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "find_package(autodiff) found '${found}', not the package in ${prefix}")
  endif()
endif()

run("${CMAKE_COMMAND}" --build "${consumer_build}" --config ${CONSUMER_CONFIG} -j ${JOBS})

foreach(exe "${consumer_build}/consumer" "${consumer_build}/${CONSUMER_CONFIG}/consumer")
  if(EXISTS "${exe}")
    run("${exe}")
    return()
  endif()
endforeach()
message(FATAL_ERROR "no consumer executable in ${consumer_build}")
