"""The framework-free half of tfopt, shared by its tf-keras and Keras 3 paths.

Mask selection, pruning steps, schedules, criteria scores, the weights each
layer type prunes, FLOP formulas and the channel plan over a layer graph,
written in numpy and the standard library. Nothing here imports TensorFlow,
tf-keras, Keras or tfmot: each Keras path supplies its layers' arrays, class
names and graph, and registers these classes with its own Keras.
"""
