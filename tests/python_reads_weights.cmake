# cmake -DROUNDTRIP=<serialize_roundtrip> -DPYTHON=<python3> -DSCRIPT=<safetensors_read.py>
#       -DFILE=<path> -P python_reads_weights.cmake
# The C++ program writes weights and prints name, shape and sum of each tensor; the Python reader
# must print the same lines from the file.
execute_process(COMMAND ${ROUNDTRIP} ${FILE} OUTPUT_VARIABLE cpp RESULT_VARIABLE cpp_result)
if(NOT cpp_result EQUAL 0)
  message(FATAL_ERROR "serialize_roundtrip failed (${cpp_result})")
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} ${FILE} OUTPUT_VARIABLE py RESULT_VARIABLE py_result)
if(NOT py_result EQUAL 0)
  message(FATAL_ERROR "safetensors_read.py failed (${py_result})")
endif()
if(NOT cpp STREQUAL py OR cpp STREQUAL "")
  message(FATAL_ERROR "C++ wrote:\n${cpp}\nPython read:\n${py}")
endif()
message(STATUS "the same tensors, shapes and sums:\n${py}")
