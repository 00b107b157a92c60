#pragma once
// The whole engine: Tape, Var, the scalar ops, Tensor and its ops, gradient(), check_gradient(),
// and the inspection tools (graph pictures, explanations, anomaly mode, statistics).
#include "autodiff/gradient.hpp"
#include "autodiff/gradient_check.hpp"
#include "autodiff/inspect.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/shape.hpp"
#include "autodiff/tape.hpp"
#include "autodiff/tensor.hpp"
#include "autodiff/var.hpp"
