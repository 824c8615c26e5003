#include <stdio.h>
#include <sys/utsname.h>

int main(void)
{
	struct utsname u;
	if (uname(&u) != 0)
		return 1;
	printf("hello from a program compiled inside the devbox spin (%s)\n", u.machine);
	return 0;
}
