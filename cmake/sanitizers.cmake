# ASan + UBSan for the whole build (the asan preset). UBSan findings abort, so a test fails.
if(MERIDIAN_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()
