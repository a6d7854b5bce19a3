# SPDX-License-Identifier: MIT
# ipcd_add_test(NAME SOURCES src... [LIBS lib...] [LABELS l...] [TIMEOUT s])
#
# One executable per test (cmocka's AddCMockaTest pattern). Exit code 77 means
# "skipped: a prerequisite is missing" (liburing's T_EXIT_SKIP).
function(ipcd_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ipcd_test_helpers ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    TIMEOUT ${T_TIMEOUT}
    SKIP_RETURN_CODE 77
    LABELS "${T_LABELS}")
endfunction()
