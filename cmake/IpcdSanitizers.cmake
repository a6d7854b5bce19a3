# SPDX-License-Identifier: MIT
# IPCD_SANITIZE=address,undefined  or  IPCD_SANITIZE=thread (own build dirs).
set(IPCD_SANITIZE "" CACHE STRING "Sanitizers: address,undefined | thread | empty")

if(IPCD_SANITIZE)
  if(IPCD_SANITIZE MATCHES "thread" AND IPCD_SANITIZE MATCHES "address")
    message(FATAL_ERROR "IPCD_SANITIZE: thread cannot be combined with address")
  endif()
  add_compile_options(-fsanitize=${IPCD_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${IPCD_SANITIZE})
  if(IPCD_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
  # -z defs cannot see the sanitizer runtime symbols of a shared object.
  string(REPLACE "-Wl,-z,defs" "" CMAKE_SHARED_LINKER_FLAGS "${CMAKE_SHARED_LINKER_FLAGS}")
  add_compile_definitions(IPCD_SANITIZED=1)
  if(IPCD_SANITIZE MATCHES "address")
    # A preloaded ASan library needs the ASan runtime first in LD_PRELOAD:
    # ipcd-run of an ASan build puts it there (and so the preload tests run).
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                    OUTPUT_VARIABLE IPCD_ASAN_RUNTIME OUTPUT_STRIP_TRAILING_WHITESPACE)
    get_filename_component(IPCD_ASAN_RUNTIME "${IPCD_ASAN_RUNTIME}" REALPATH)
    if(NOT EXISTS "${IPCD_ASAN_RUNTIME}")
      message(FATAL_ERROR "IPCD_SANITIZE=address: no ASan runtime (${IPCD_ASAN_RUNTIME})")
    endif()
    add_compile_definitions(IPCD_ASAN_RUNTIME="${IPCD_ASAN_RUNTIME}")
  endif()
endif()
