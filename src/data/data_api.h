// What the rest of trainbench uses from src/data: loading by name, splits, normalisation and
// batch assembly. Errors in files or values are thrown as InputError naming the file/value.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace tb {

// Names --dataset accepts: mnist, fashion-mnist, cifar10, digit-csv.
std::vector<std::string> dataset_names();

// The name as dataset_names() spells it (case-insensitive; "cifar-10" -> "cifar10"). Throws
// InputError listing the choices for an unknown name.
std::string canonical_dataset_name(const std::string& name);

// data_dir itself, or $TRAINBENCH_DATA when it is "", or ./data when that is unset too.
std::string resolve_data_dir(const std::string& data_dir);

// Loads a dataset from data_dir laid out as DIR/mnist/, DIR/fashion-mnist/,
// DIR/cifar-10-batches-bin/, DIR/digit-csv/{train.csv,test.csv}. data_dir "" means
// $TRAINBENCH_DATA, then ./data. If the files are missing, says so and names
// `trainbench data fetch NAME`.
DatasetFiles load_dataset(const std::string& name, const std::string& data_dir);

// Splits deterministically for `seed`. Throws InputError on bad ratios.
// Default (spec.ratios empty): test = the official test set in order; validation = a seeded
// random spec.validation_fraction of train; train = the rest, in file order (the trainer
// shuffles per epoch). A dataset without an official test set uses ratios 80,10,10.
// With ratios (train,validation,test; each >= 0, train > 0; normalised by their sum): all
// labelled items, train then test, are pooled, shuffled with the seed and cut.
// The Subsets point into `files`, which must outlive them (and not be moved). Pooling moves
// the official test items onto the end of files.train (see DatasetFiles::pooled_train_size),
// hence the non-const reference; indices within each split are in ascending order.
Splits make_splits(DatasetFiles& files, const SplitSpec& spec, uint64_t seed);

// Keeps the first `limit` items of the training split (and of validation and test, so quick
// runs stay quick). limit <= 0 leaves them whole.
void limit_splits(Splits& splits, int64_t limit);

Normalization compute_normalization(const Subset& train);

// Writes items subset.indices[positions[0..n)] as normalised float NCHW into images[n*C*H*W]
// and their labels into labels[n] (labels may be null for a prediction set). Augmentation
// draws come from counter_uniform(seed, epoch, dataset index), so they are reproducible.
// Draw k of the item at dataset index i is counter_uniform(seed, epoch, i * 4 + k): k = 0 the
// crop's row offset, 1 its column offset, 2 the flip (taken when < 0.5); the draws do not
// depend on which batch the item lands in. The crop pads with 0 *after* normalisation, so the
// padding is the channel mean rather than black (torchvision's RandomCrop before Normalize
// pads black); a PyTorch peer must pad the same way for identical batches. Items of a dataset
// without labels get label -1.
void gather_batch(const Subset& subset, const int64_t* positions, int n,
                  const Normalization& norm, const Augmentation& aug, uint64_t seed,
                  uint64_t epoch, float* images, int32_t* labels);

}  // namespace tb
