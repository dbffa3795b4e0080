/* virtkeep - command line front end. */
#include <config.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("virtkeep %s\n", PACKAGE_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: virtkeep [--version]\n");
    return 2;
}
