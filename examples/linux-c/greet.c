/* Greets whoever its arguments name: "hello from kiln" by default. */
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        puts("hello from kiln");
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        printf("hello from %s\n", argv[i]);
    }
    return 0;
}
