# meridian_warnings(target): strict warnings on the project's own code only.
function(meridian_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Werror
    -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wformat=2
    -Wno-unused-parameter)
endfunction()
