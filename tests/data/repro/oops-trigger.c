/* A reproducer that crashes the kernel through the rig's test module (workloads/oopsmod,
 * loaded with `rig repro ... --test-module`): it writes a trigger to /proc/pinrig_oops.
 * Default: null-deref (an Oops; fatal with the rig's oops=panic, so the guest dies).
 * -DTRIGGER_WARN: a WARNING instead (the guest lives on). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef TRIGGER_WARN
#define TRIGGER "warn"
#else
#define TRIGGER "null-deref"
#endif

int main(void)
{
	int fd = open("/proc/pinrig_oops", O_WRONLY);

	if (fd < 0)
		return perror("/proc/pinrig_oops (is the test module loaded?)"), 1;
	if (write(fd, TRIGGER, strlen(TRIGGER)) < 0)
		perror("write " TRIGGER);
	close(fd);
	printf("oops-trigger: wrote %s and lived\n", TRIGGER);
	return 0;
}
