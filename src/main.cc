#include "coffre/server/cli.h"

int main(int argc, char** argv) { return coffre::server::Main(argc, argv); }
