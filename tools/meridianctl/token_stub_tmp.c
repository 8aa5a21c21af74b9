#include <stdio.h>
#include "mctl.h"
int mctl_token_main(int argc, char **argv) {
  (void)argc; (void)argv;
  fprintf(stderr, "meridianctl token: not built yet\n");
  return 1;
}
