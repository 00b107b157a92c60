#!/usr/bin/env python3
"""Checks a training plot written by mnist_mlp --plot: well-formed XML (xml.etree parses it), an
SVG root, and the four curves (loss, val_loss, accuracy, val_accuracy) with one point per epoch.

    check_history_svg.py FILE EPOCHS
"""
import sys
import xml.etree.ElementTree as ElementTree

SVG = "{http://www.w3.org/2000/svg}"


def main():
    path, epochs = sys.argv[1], int(sys.argv[2])
    root = ElementTree.parse(path).getroot()  # raises on malformed XML
    assert root.tag == SVG + "svg", f"root element is {root.tag}, expected svg"
    points = {}
    for line in root.iter(SVG + "polyline"):
        name = line.get("data-series")
        points[name] = points.get(name, 0) + len(line.get("points").split())
    expected = {name: epochs for name in ("loss", "val_loss", "accuracy", "val_accuracy")}
    assert points == expected, f"curves {points}, expected {expected}"
    texts = [t.text for t in root.iter(SVG + "text")]
    for label in ("epoch", "loss", "accuracy", "training", "validation"):
        assert label in texts, f"no text '{label}' in the chart"
    print(f"{path}: well-formed SVG, curves {sorted(points)} with {epochs} points each")


if __name__ == "__main__":
    main()
