/* fake include/linux/mm.h */
#define FOLL_WRITE	0x01
#define FOLL_LONGTERM	0x100
