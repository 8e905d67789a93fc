// What access_key_store.h declares beside the store: a new key's secret is wiped with it.

#include "coffre/keystore/access_key_store.h"

#include "coffre/common/secret.h"

namespace coffre::keystore {

NewAccessKey::~NewAccessKey() { WipeString(secret_access_key); }

}  // namespace coffre::keystore
