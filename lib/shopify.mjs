import { Session } from '@shopify/shopify-api'
import cjs from './shopify.js'

// Sessions made with the ESM copy of @shopify/shopify-api's Session, the one an ESM app imports.
export const RedisSessionStorage = cjs.storageClass(() => Session)
export default RedisSessionStorage
