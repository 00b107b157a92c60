# Checkpoints under mpirun: 2 ranks train 1 epoch writing a checkpoint (rank 0 writes it), then 2
# ranks continue to epoch 2 from it; the model file must be byte for byte that of 2 ranks training
# 2 epochs straight. -DMPIRUN="mpiexec;…" -DMLP=mnist_mlp -DDIR=work directory.
file(REMOVE_RECURSE ${DIR})
file(MAKE_DIRECTORY ${DIR})
set(common --hidden 32 --batch-size 64)
foreach(run "--epochs;1;--checkpoint;${DIR}/run.ckpt"
            "--epochs;2;--resume;${DIR}/run.ckpt;--save;${DIR}/resumed.safetensors"
            "--epochs;2;--save;${DIR}/straight.safetensors")
  execute_process(COMMAND ${MPIRUN} -np 2 ${MLP} ${common} ${run} RESULT_VARIABLE status
                  OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "mpirun … mnist_mlp ${run}: exit status ${status}\n${out}")
  endif()
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${DIR}/resumed.safetensors
                        ${DIR}/straight.safetensors RESULT_VARIABLE differ)
if(NOT differ EQUAL 0)
  message(FATAL_ERROR "the resumed run's model differs from the uninterrupted run's")
endif()
message("the resumed 2-rank run's model file is the uninterrupted run's, byte for byte")
