import cjs from './index.js'

export const RedisStore = cjs.RedisStore
export default cjs.RedisStore
