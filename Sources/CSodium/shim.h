#ifndef PEAT_CSODIUM_SHIM_H
#define PEAT_CSODIUM_SHIM_H
#include <sodium.h>
#endif
