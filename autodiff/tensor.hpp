#pragma once
// Tensors on the tape, and every tensor op, by family. Each op is one struct in one of these
// files, its forward and backward side by side; op.hpp says how to write one of your own.
#include "autodiff/tensor/bridge.hpp"         // to_var, from_vars, tensor ∘ Var
#include "autodiff/tensor/conv.hpp"           // conv2d on NHWC images (im2col + BLAS)
#include "autodiff/tensor/conv_pool.hpp"      // conv2d and max_pool2d as one op
#include "autodiff/tensor/elementwise.hpp"    // the scalar table on tensors, where, comparisons
#include "autodiff/tensor/layout.hpp"         // transpose, reshape, slice_rows, gather_rows
#include "autodiff/tensor/linalg.hpp"         // matmul (BLAS)
#include "autodiff/tensor/normalization.hpp"  // dropout, batch_norm
#include "autodiff/tensor/op.hpp"             // apply(): how an op is defined and recorded
#include "autodiff/tensor/pooling.hpp"        // max, average and global average pooling
#include "autodiff/tensor/reductions.hpp"     // sum, mean, max, min, logsumexp, argmax, argmin
#include "autodiff/tensor/softmax.hpp"        // softmax, log_softmax, cross-entropy, one_hot
#include "autodiff/tensor/tangent.hpp"        // tangent mode: H·v through the ops above
#include "autodiff/tensor/tensor.hpp"         // Tensor<T>: creation, access, backward()
