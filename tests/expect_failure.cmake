# cmake -DCOMMAND="a;b;c" -DEXPECT=regex -P expect_failure.cmake: the command must exit non-zero
# and print (stdout or stderr) something matching EXPECT.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(status EQUAL 0)
  message(FATAL_ERROR "expected a failure, the command succeeded")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "exit status ${status}, but the output does not match: ${EXPECT}")
endif()
message("exit status ${status}, and the expected message")
