/* A reproducer that does not crash: maps a file, writes through the mapping, msyncs, reads it
 * back (the kind of syscalls a GUP reproducer makes), and exits 0. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void)
{
	const size_t len = 1 << 20;
	char buf[64];
	int fd = open("data", O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, len) != 0)
		return perror("open/ftruncate"), 1;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return perror("mmap"), 1;
	for (size_t i = 0; i < len; i += 4096)
		p[i] = (char)i;
	if (msync(p, len, MS_SYNC) != 0)
		return perror("msync"), 1;
	if (pread(fd, buf, sizeof(buf), 4096) != (ssize_t)sizeof(buf) || buf[0] != p[4096])
		return fprintf(stderr, "read back differs\n"), 1;
	munmap(p, len);
	close(fd);
	printf("clean: 256 pages written and read back\n");
	return 0;
}
