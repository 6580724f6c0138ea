#include "model/catalog.h"

#include <gtest/gtest.h>

namespace joule {
namespace {

TEST(CatalogTest, BuiltInHasReferenceAccelerators) {
  Catalog c = Catalog::BuiltIn();
  for (const char* name : {"h100-sxm", "h200", "b200", "gb200", "mi300x"}) {
    EXPECT_TRUE(c.FindAccelerator(name).has_value()) << name;
  }
  EXPECT_EQ(c.accelerator(*c.FindAccelerator("h100-sxm")).rated_w, 700);
  EXPECT_EQ(c.accelerator(*c.FindAccelerator("gb200")).nvlink_domain_size, 72u);
}

TEST(CatalogTest, NodePowerIsAcceleratorsPlusOverhead) {
  Catalog c = Catalog::BuiltIn();
  NodeTypeId hgx = *c.FindNode("hgx-h100");
  EXPECT_EQ(c.NodeRatedW(hgx), 8 * 700 + 4600);
  EXPECT_EQ(c.NodeIdleW(hgx), 8 * 70 + 1500);
}

TEST(CatalogTest, AddingAnExistingNameReplacesIt) {
  Catalog c = Catalog::BuiltIn();
  size_t before = c.accelerators().size();
  AcceleratorTypeId id = c.Add(AcceleratorType{"h100-sxm", 80, 650, 60, 8});
  EXPECT_EQ(c.accelerators().size(), before);
  EXPECT_EQ(c.accelerator(id).rated_w, 650);
  EXPECT_FALSE(c.FindAccelerator("no-such-gpu").has_value());
}

}  // namespace
}  // namespace joule
