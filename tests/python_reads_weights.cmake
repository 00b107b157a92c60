# Weights exchanged with numpy (json, struct and numpy only), run by ctest:
#   cmake -DMODE=<mode> -DROUNDTRIP=<serialize_roundtrip> -DPYTHON=<python3 with numpy>
#         -DSCRIPTS=<scripts dir> -DFILE=<weights path> [-DDATA=<MNIST dir>]
#         -P python_reads_weights.cmake
# MODE sums:          C++ writes a small model's weights and prints name, shape and sum of each
#                     tensor; scripts/safetensors_read.py must print the same lines from the file.
# MODE cpp_to_python: C++ trains the MNIST MLP, writes its weights and prints its outputs on the
#                     test images; numpy computes them from the file (mnist_numpy.py check).
# MODE python_to_cpp: numpy trains the MNIST MLP and writes its weights (mnist_numpy.py train);
#                     C++ loads them into its own network and prints its outputs, which numpy
#                     checks as above.
function(run name)
  execute_process(COMMAND ${ARGN} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${name} failed (${result}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

if(MODE STREQUAL "sums")
  run(serialize_roundtrip ${ROUNDTRIP} ${FILE})
  set(cpp "${out}")
  run(safetensors_read.py ${PYTHON} ${SCRIPTS}/safetensors_read.py ${FILE})
  if(NOT cpp STREQUAL out OR cpp STREQUAL "")
    message(FATAL_ERROR "C++ wrote:\n${cpp}\nPython read:\n${out}")
  endif()
  message(STATUS "the same tensors, shapes and sums:\n${out}")
elseif(MODE STREQUAL "cpp_to_python" OR MODE STREQUAL "python_to_cpp")
  if(MODE STREQUAL "cpp_to_python")
    run(serialize_roundtrip ${ROUNDTRIP} --mnist-save ${FILE} ${DATA})
  else()
    run("mnist_numpy.py train" ${PYTHON} ${SCRIPTS}/mnist_numpy.py train --data ${DATA} --seed 1
        --out ${FILE})
    message(STATUS "${out}")
    run(serialize_roundtrip ${ROUNDTRIP} --mnist-load ${FILE} ${DATA})
  endif()
  file(WRITE ${FILE}.outputs.txt "${out}")
  run("mnist_numpy.py check" ${PYTHON} ${SCRIPTS}/mnist_numpy.py check --data ${DATA}
      --weights ${FILE} --outputs ${FILE}.outputs.txt)
  message(STATUS "C++ and numpy: ${out}")
else()
  message(FATAL_ERROR "MODE must be sums, cpp_to_python or python_to_cpp, not \"${MODE}\"")
endif()
