# meridian_add_test(NAME SOURCES a.c [b.c] LIBS x y [LABELS unit|integration] [TIMEOUT s])
# One cmocka executable per test source file, as a rule named after it
# (tests/<part>/test_<what>.c -> test_<what>), so ctest -R selects by file. Integration tests
# carry the label "integration" and read the servers' addresses from the environment (.run/env).
function(meridian_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS;ENV" ${ARGN})
  if(NOT MERIDIAN_TESTS)
    return()
  endif()
  add_executable(${name} ${T_SOURCES})
  meridian_warnings(${name})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "MERIDIAN_SOURCE_DIR=${CMAKE_SOURCE_DIR};MERIDIAN_BINARY_DIR=${CMAKE_BINARY_DIR};${T_ENV}")
endfunction()
