package pce

import "testing"

func TestOperations(t *testing.T) {
	for _, o := range AllOperations() {
		if p, ok := ParseOperation(o.String()); !ok || p != o {
			t.Errorf("ParseOperation(%q) = %v, %v", o.String(), p, ok)
		}
	}
	if _, ok := ParseOperation("patch"); ok {
		t.Error("ParseOperation(patch) accepted")
	}
	s := SetOf(OpUpdate)
	if !s.Has(OpUpdate) || s.Has(OpList) || s.Has(OpNone) || s.All() || !SetOf(AllOperations()...).All() {
		t.Errorf("set %b", s)
	}
	for _, tc := range []struct {
		method string
		shape  Shape
		want   Operation
	}{
		{"GET", ShapeCollection, OpList}, {"HEAD", ShapeItem, OpList},
		{"POST", ShapeCollection, OpCreate}, {"POST", ShapeType, OpNone}, {"POST", ShapeItem, OpNone},
		{"PUT", ShapeCollection, OpUpdate}, {"PUT", ShapeItem, OpUpdate},
		{"DELETE", ShapeType, OpDelete}, {"PATCH", ShapeItem, OpNone}, {"OPTIONS", ShapeItem, OpNone},
	} {
		if got := operationFor(tc.method, tc.shape); got != tc.want {
			t.Errorf("operationFor(%s, %d) = %v, want %v", tc.method, tc.shape, got, tc.want)
		}
	}
	if ShapeItem.Allow() != "GET, HEAD, PUT, DELETE" || ShapeCollection.Allow() != "GET, HEAD, POST, DELETE" {
		t.Error("Allow")
	}
}
