# cmake -DMNIST_MLP=<mnist_mlp> -DPYTHON=<python3> -DSCRIPT=<check_history_svg.py> -DFILE=<path>
#       -P history_svg.cmake
# mnist_mlp --plot writes the training curves; Python's xml.etree must parse them, with the four
# curves of one point per epoch.
file(REMOVE ${FILE})
execute_process(COMMAND ${MNIST_MLP} --epochs 2 --plot ${FILE} RESULT_VARIABLE run_result
                OUTPUT_QUIET)
if(NOT run_result EQUAL 0)
  message(FATAL_ERROR "mnist_mlp --plot failed (${run_result})")
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} ${FILE} 2 RESULT_VARIABLE check_result)
if(NOT check_result EQUAL 0)
  message(FATAL_ERROR "check_history_svg.py rejected ${FILE}")
endif()
