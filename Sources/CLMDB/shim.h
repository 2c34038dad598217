#ifndef PEAT_CLMDB_SHIM_H
#define PEAT_CLMDB_SHIM_H
#include <lmdb.h>
#endif
