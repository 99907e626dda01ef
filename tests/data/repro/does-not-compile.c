/* A reproducer with a typo: `rig repro --c` must say where, and write nothing. */
#include <stdio.h>

int main(void)
{
	int fd = open_the_thing("/proc/pinrig_oops");
	printf("%d\n", fd)
	return 0;
}
