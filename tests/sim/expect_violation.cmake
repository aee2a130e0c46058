# SPDX-License-Identifier: Apache-2.0
# Runs ${SIM} ${ARGS}; succeeds only if it exits 2 (an invariant violated)
# and says so. Any other status (0: the defect went unnoticed; 1: setup
# error; a signal or a sanitizer's exit: a crash) fails the test.
execute_process(COMMAND ${SIM} ${ARGS} RESULT_VARIABLE status OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("${out}")
if(NOT status STREQUAL "2" OR NOT out MATCHES "INVARIANT VIOLATED seed=")
  message(FATAL_ERROR "expected the sim to report an invariant violation (exit 2), "
                      "got '${status}'\n${err}")
endif()
message("caught: the broken apply was detected")
