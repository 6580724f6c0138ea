// The scenario's `failures:` block (docs/scenario-format.md): the failure model's defaults with
// any figure overridden. Thread-safe (no state).
#pragma once

#include "io/yaml_fields.h"
#include "model/failure_model.h"

namespace joule::io {

// Throws (through Fields) naming the key and what is wrong.
FailureModelSpec ParseFailures(const Fields& f);

}  // namespace joule::io
