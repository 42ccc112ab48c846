package stripe_test

import (
	"github.com/orderflow/orderflow/integrations/stripe"
	"github.com/orderflow/orderflow/processor"
)

var _ processor.OrderDetails = (*stripe.Client)(nil)
